exports.greet = (name) => `hello, ${name || 'world'}`;
