// Lockdown of a new realm, run once before any app code (after SES's
// `lockdown()`, as used by Agoric and MetaMask). A realm is reused by many
// requests of one app, so nothing a request can reach may be left writable:
// every intrinsic and everything reachable from the global object, including
// the intrinsics only syntax reaches (generator and async function
// prototypes, iterator prototypes, %TypedArray%, %ThrowTypeError%), is
// frozen. The global object itself is sealed, except the host names of SPEC
// §5, which the engine redefines for each request and clears after it (it
// drops the realm when it cannot). Called with the list of those names.
(function lockdown(hostNames) {
  'use strict';
  const G = globalThis;
  const { freeze, defineProperty, getOwnPropertyDescriptor, getPrototypeOf, preventExtensions } = Object;
  const ownKeys = Reflect.ownKeys;
  const apply = Reflect.apply;
  const hasOwn = Object.prototype.hasOwnProperty;
  const names = freeze(hostNames.slice());
  const ThrowTypeError = TypeError;

  // Objects only syntax leads to; their prototype chains are walked too.
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
    getOwnPropertyDescriptor(Function.prototype, 'caller'),
    (function () { 'use strict'; return getOwnPropertyDescriptor(arguments, 'callee'); })(),
  ];
  if (typeof Iterator === 'function') {
    hidden.push([].values().map((x) => x), Iterator.from({ next() { return { done: true }; } }));
  }

  const all = new Set();
  const stack = [G, ...hidden];
  while (stack.length > 0) {
    const o = stack.pop();
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || all.has(o)) continue;
    all.add(o);
    stack.push(getPrototypeOf(o));
    for (const key of ownKeys(o)) {
      const d = getOwnPropertyDescriptor(o, key);
      if ('value' in d) stack.push(d.value);
      else stack.push(d.get, d.set);
    }
  }

  // Freezing makes properties read-only but leaves accessors callable, and
  // a native setter may write state the realm keeps outside any property
  // (QuickJS-ng's `Error.prepareStackTrace` and `Error.stackTraceLimit` set
  // fields of the context). Every setter but those known to act only on
  // their own receiver becomes a read-only data property holding what its
  // getter answers now; a setter this list does not know is thereby shut,
  // never trusted.
  const throwTypeError = getOwnPropertyDescriptor(Function.prototype, 'caller')?.get;
  const safeSetters = new Set([getOwnPropertyDescriptor(Object.prototype, '__proto__').set, throwTypeError]);
  if (typeof Iterator === 'function') {
    // Both define an own property on the receiver and refuse Iterator.prototype itself.
    for (const key of ['constructor', Symbol.toStringTag]) safeSetters.add(getOwnPropertyDescriptor(Iterator.prototype, key)?.set);
  }
  for (const o of all) {
    for (const key of ownKeys(o)) {
      const d = getOwnPropertyDescriptor(o, key);
      if (d.set === undefined || safeSetters.has(d.set)) continue;
      const value = d.get === undefined ? undefined : apply(d.get, o, []);
      defineProperty(o, key, { value, writable: false, enumerable: d.enumerable, configurable: false });
    }
  }

  // The override mistake: once a prototype's property is frozen, assigning
  // that property on an object that inherits it fails (`obj.toString = f`,
  // `this.name = 'MyError'`, `e.message = '…'`, `Child.prototype.constructor
  // = Child`). The properties apps assign are turned into accessors whose
  // setter defines an own property on the object assigned to instead,
  // which is what the assignment did before the freeze.
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
    all.add(get);
    all.add(set);
  }
  // Read on hot paths by the engine itself (species lookups in `map`,
  // `then`, `slice`), where a getter call would cost every call.
  const hot = new Set([Array.prototype, Promise.prototype, RegExp.prototype, ArrayBuffer.prototype,
    getPrototypeOf(Uint8Array).prototype]);
  for (const o of all) {
    if (o === Object.prototype) {
      for (const key of ownKeys(o)) enable(o, key);
      continue;
    }
    const isPrototype = apply(hasOwn, o, ['constructor']);
    if (!isPrototype) continue;
    for (const key of ['toString', 'valueOf', 'toLocaleString', 'toJSON', 'name', 'message']) enable(o, key);
    if (o === Function.prototype) for (const key of ['bind', 'call', 'apply']) enable(o, key);
    const typed = getPrototypeOf(o) === getPrototypeOf(Uint8Array).prototype;
    if (!hot.has(o) && !typed) enable(o, 'constructor');
  }

  for (const o of all) {
    if (o !== G) freeze(o);
  }
  for (const key of ownKeys(G)) {
    const d = getOwnPropertyDescriptor(G, key);
    if ('value' in d) defineProperty(G, key, { writable: false, configurable: false });
    else defineProperty(G, key, { configurable: false });
  }
  for (let i = 0; i < names.length; i++) {
    defineProperty(G, names[i], { value: undefined, writable: true, enumerable: true, configurable: true });
  }
  preventExtensions(G);
})
