// The workerd peer: the same JSON hello as a Workers module.
export default {
  async fetch() {
    return new Response(JSON.stringify({ hello: "world" }), {
      headers: { "content-type": "application/json" },
    });
  },
};
