// A process that ends without close() (its event loop runs dry, process.exit(),
// an uncaught exception) closes its handles as close() would: roles are released
// and a creator's name goes away per unlinkOnClose, so the next start of the
// program does not meet ERR_CHANNEL_EXISTS. No signal handler is installed: a
// process killed by a signal leaves its channel behind, as a stale one.

interface Closable {
  close(): void;
}

const open = new Set<WeakRef<Closable>>();
let listening = false;

/** Registers an open handle; the returned token forgets it again. */
export function closeAtExit(handle: Closable): WeakRef<Closable> {
  if (!listening) {
    listening = true;
    process.on('exit', closeAll);
  }
  const ref = new WeakRef(handle);
  open.add(ref);
  return ref;
}

/** The handle was closed: nothing to do for it at exit. */
export function forgetAtExit(ref: WeakRef<Closable>): void {
  open.delete(ref);
}

function closeAll(): void {
  for (const ref of open) {
    try {
      ref.deref()?.close();
    } catch {
      // one handle's failure must not keep the others open
    }
  }
  open.clear();
}
