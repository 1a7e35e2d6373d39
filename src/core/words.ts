// Loads of words that another process writes, for the data path.
//
// Atomics.load is not inlined by the optimizing compiler of Node 20's V8: each
// one is a call into a builtin, several times the cost of a plain typed-array
// load, and a message takes several of them on each side. On x64 every load already has
// acquire order (the hardware keeps loads in order, and a later load never
// passes an earlier one), and V8 keeps typed-array loads in program order on
// its effect chain, so a plain load is what Atomics.load compiles to in C there.
// arm64 reorders loads: it keeps Atomics.load.
//
// Use loadWord only for a load that runs once per call, or once per turn of a
// loop that calls something (an Atomics builtin, a function) before it turns;
// never in a loop that waits for the word to change with only plain loads in
// it: V8 may merge repeated plain loads of one index when nothing between them
// can write memory. The seq_cst stores stay Atomics.store: they are also the
// fence between publishing a cursor and reading the waiter counts.

const plainLoadsAcquire = process.arch === 'x64' || process.arch === 'ia32';

/** The word at index, with acquire order. */
export const loadWord: (i32: Int32Array, index: number) => number = plainLoadsAcquire
  ? (i32, index) => i32[index]
  : (i32, index) => Atomics.load(i32, index);
