//! A counting allocator for one QuickJS runtime.
//!
//! QuickJS reports an out-of-memory as an ordinary, catchable
//! `InternalError` that JS can also throw by hand, so its message cannot be
//! trusted. This allocator refuses allocations over the lane's limit and
//! records that it did: the flag, not the exception, decides `JS_MEMORY`.

use std::cell::Cell;
use std::rc::Rc;

use rquickjs::allocator::Allocator;

/// Shared view of a runtime's allocations.
#[derive(Debug, Default)]
pub struct AllocState {
    used: Cell<usize>,
    limit: Cell<usize>,
    refused: Cell<bool>,
}

impl AllocState {
    /// A state with a limit in bytes.
    pub fn new(limit: usize) -> Rc<AllocState> {
        let s = AllocState::default();
        s.limit.set(limit);
        Rc::new(s)
    }

    /// Bytes currently allocated.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Whether an allocation was refused since the last [`clear_refused`](Self::clear_refused).
    pub fn refused(&self) -> bool {
        self.refused.get()
    }

    /// Forgets earlier refusals.
    pub fn clear_refused(&self) {
        self.refused.set(false);
    }

    /// Bytes left under the limit.
    pub fn remaining(&self) -> usize {
        self.limit.get().saturating_sub(self.used.get())
    }

    /// Records a refusal made outside the allocator: a host call that would
    /// bring more into the heap than it has room for. The request then ends
    /// with `JS_MEMORY`, like any allocation over the limit.
    pub fn refuse(&self) {
        self.refused.set(true);
    }

    fn admit(&self, grow: usize) -> bool {
        let ok = self
            .used
            .get()
            .checked_add(grow)
            .is_some_and(|total| total <= self.limit.get());
        if !ok {
            self.refused.set(true);
        }
        ok
    }
}

/// The allocator handed to `Runtime::new_with_alloc`.
pub struct CountingAllocator(pub Rc<AllocState>);

fn usable(ptr: *mut u8) -> usize {
    if ptr.is_null() {
        return 0;
    }
    // SAFETY: ptr came from this allocator's malloc/calloc/realloc.
    unsafe { libc::malloc_usable_size(ptr.cast()) }
}

// SAFETY: every pointer returned comes from libc malloc/calloc/realloc, which
// align to at least 16 bytes (≥ usize), and usable_size asks libc about the
// same pointer.
unsafe impl Allocator for CountingAllocator {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.0.admit(size) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain malloc; a null result is passed on to QuickJS.
        let ptr = unsafe { libc::malloc(size.max(1)) }.cast::<u8>();
        self.0.used.set(self.0.used.get() + usable(ptr));
        ptr
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            self.0.refused.set(true);
            return std::ptr::null_mut();
        };
        if !self.0.admit(total) {
            return std::ptr::null_mut();
        }
        // SAFETY: plain calloc.
        let ptr = unsafe { libc::calloc(count.max(1), size.max(1)) }.cast::<u8>();
        self.0.used.set(self.0.used.get() + usable(ptr));
        ptr
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        self.0
            .used
            .set(self.0.used.get().saturating_sub(usable(ptr)));
        // SAFETY: the caller guarantees ptr came from this allocator.
        unsafe { libc::free(ptr.cast()) };
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        let old = usable(ptr);
        if new_size > old && !self.0.admit(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller guarantees ptr came from this allocator.
        let new = unsafe { libc::realloc(ptr.cast(), new_size.max(1)) }.cast::<u8>();
        if !new.is_null() {
            self.0
                .used
                .set(self.0.used.get().saturating_sub(old) + usable(new));
        }
        new
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        usable(ptr)
    }
}
