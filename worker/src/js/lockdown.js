// Lockdown of a new realm, run once before any app code (after SES's
// `lockdown()`, as used by Agoric and MetaMask). A realm is reused by many
// requests of one app, so nothing a request can reach may be left writable:
// every intrinsic and everything reachable from the global object is
// frozen, and the global object is sealed except the host names of SPEC §5,
// which the engine sets for each request and clears after it.
//
// The walk over every reachable object and the freezing are done by the
// engine (`lockdown.rs`) through QuickJS's C API, an order of magnitude
// faster than the same walk in JS; this file holds the parts that are JS by
// nature: the objects only syntax reaches, and the accessors that replace
// frozen properties apps assign to.
({
  // Where the walk starts besides the global object: objects only syntax
  // leads to (their prototype chains are walked too), and the setters known
  // to act only on their own receiver.
  roots() {
    'use strict';
    const { getOwnPropertyDescriptor, getPrototypeOf } = Object;
    const hidden = [
      function* () {},
      async function () {},
      async function* () {},
      (function* () {})(),
      (async function* () {})(),
      [][Symbol.iterator](),
      new Map()[Symbol.iterator](),
      new Set()[Symbol.iterator](),
      ''[Symbol.iterator](),
      /x/[Symbol.matchAll](''),
      getPrototypeOf(Uint8Array),
      (function () { 'use strict'; return getOwnPropertyDescriptor(arguments, 'callee').get; })(),
    ];
    if (typeof Iterator === 'function') {
      hidden.push([].values().map((x) => x), Iterator.from({ next() { return { done: true }; } }));
    }
    const safeSetters = [
      getOwnPropertyDescriptor(Object.prototype, '__proto__').set,
      // %ThrowTypeError%, which only throws.
      getOwnPropertyDescriptor(Function.prototype, 'caller')?.set,
      // Defines `stack` on the receiver and refuses Error.prototype itself.
      getOwnPropertyDescriptor(Error.prototype, 'stack')?.set,
    ];
    if (typeof Iterator === 'function') {
      // Both define an own property on the receiver and refuse Iterator.prototype itself.
      for (const key of ['constructor', Symbol.toStringTag]) safeSetters.push(getOwnPropertyDescriptor(Iterator.prototype, key)?.set);
    }
    return [hidden, safeSetters.filter((f) => f !== undefined)];
  },

  // Before the engine freezes everything:
  // - `shut`: [object, key] of accessors whose setter is not known safe.
  //   Freezing makes properties read-only but leaves accessors callable,
  //   and a native setter may write state the realm keeps outside any
  //   property (QuickJS-ng's `Error.prepareStackTrace` and
  //   `Error.stackTraceLimit` set fields of the context). Each becomes a
  //   read-only data property holding what its getter answers now.
  // - `prototypes`: objects with an own `constructor`. The override
  //   mistake: once a prototype's property is frozen, assigning it on an
  //   object that inherits it fails (`obj.toString = f`, `this.name =
  //   'MyError'`, `e.message = '…'`, `Child.prototype.constructor = Child`).
  //   The properties apps assign become accessors whose setter defines an
  //   own property on the object assigned to, which is what the assignment
  //   did before the freeze.
  // - the global object is sealed, with `hostNames` left configurable.
  // Returns the functions it made, for the engine to freeze with the rest.
  finish(shut, prototypes, hostNames) {
    'use strict';
    const G = globalThis;
    const { defineProperty, getOwnPropertyDescriptor, getPrototypeOf, preventExtensions } = Object;
    const ownKeys = Reflect.ownKeys;
    const apply = Reflect.apply;
    const ThrowTypeError = TypeError;
    const made = [];

    for (const [o, key] of shut) {
      const d = getOwnPropertyDescriptor(o, key);
      const value = d.get === undefined ? undefined : apply(d.get, o, []);
      defineProperty(o, key, { value, writable: false, enumerable: d.enumerable, configurable: false });
    }

    function enable(obj, key) {
      const d = getOwnPropertyDescriptor(obj, key);
      if (d === undefined || !('value' in d) || !d.writable || !d.configurable) return;
      const value = d.value;
      const accessor = {
        get() { return value; },
        set(v) {
          if (this === obj) throw new ThrowTypeError(`Cannot assign to read only property '${String(key)}' of a shared built-in`);
          defineProperty(this, key, { value: v, writable: true, enumerable: true, configurable: true });
        },
      };
      const get = getOwnPropertyDescriptor(accessor, 'get').value;
      const set = getOwnPropertyDescriptor(accessor, 'set').value;
      defineProperty(obj, key, { get, set, enumerable: d.enumerable, configurable: false });
      made.push(get, set);
    }
    for (const key of ownKeys(Object.prototype)) enable(Object.prototype, key);
    // Read on hot paths by the engine itself (species lookups in `map`,
    // `then`, `slice`), where a getter call would cost every call.
    const typedArray = getPrototypeOf(Uint8Array).prototype;
    const hot = [Array.prototype, Promise.prototype, RegExp.prototype, ArrayBuffer.prototype, typedArray];
    for (const o of prototypes) {
      if (o === Object.prototype) continue;
      for (const key of ['toString', 'valueOf', 'toLocaleString', 'toJSON', 'name', 'message']) enable(o, key);
      if (o === Function.prototype) for (const key of ['bind', 'call', 'apply']) enable(o, key);
      if (!hot.includes(o) && getPrototypeOf(o) !== typedArray) enable(o, 'constructor');
    }

    for (const key of ownKeys(G)) {
      const d = getOwnPropertyDescriptor(G, key);
      if ('value' in d) defineProperty(G, key, { writable: false, configurable: false });
      else defineProperty(G, key, { configurable: false });
    }
    for (let i = 0; i < hostNames.length; i++) {
      defineProperty(G, hostNames[i], { value: undefined, writable: true, enumerable: true, configurable: true });
    }
    preventExtensions(G);
    return made;
  },
})
