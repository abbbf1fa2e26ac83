//! The request and response of the hook that is running.
//!
//! The host lends a hook its `request` and `response` only for the call.
//! JavaScript objects outlive it (a plugin may keep one in a variable), so
//! they do not hold the borrow: each carries the number of the hook call
//! that made it, and a method finds the live resource here only while that
//! call is running. A kept object then fails cleanly, as a dropped handle
//! does under ComponentizeJS, instead of reaching a later request.

use std::cell::Cell;

use weir_sdk::{Request, Response};

thread_local! {
    static CALL: Cell<u64> = const { Cell::new(0) };
    static REQUEST: Cell<*const Request> = const { Cell::new(std::ptr::null()) };
    static RESPONSE: Cell<*const Response> = const { Cell::new(std::ptr::null()) };
}

/// Run `f` with `req` (and `resp`) lent to JavaScript; `f` gets the number
/// of this call. The loan ends when `f` returns, whatever it does: a
/// closure rather than a guard, so no caller can keep the loan alive past
/// the borrow (a forgotten guard would).
pub fn lend<T>(req: &Request, resp: Option<&Response>, f: impl FnOnce(u64) -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            REQUEST.set(std::ptr::null());
            RESPONSE.set(std::ptr::null());
            // Objects made during the call that ended no longer match.
            CALL.set(CALL.get().wrapping_add(1));
        }
    }
    let call = CALL.get().wrapping_add(1);
    CALL.set(call);
    REQUEST.set(req);
    RESPONSE.set(resp.map_or(std::ptr::null(), |r| r as *const Response));
    let _clear = Clear;
    f(call)
}

/// The request lent to call `call`, if that call is running.
pub fn request<T>(call: u64, f: impl FnOnce(&Request) -> T) -> Option<T> {
    let ptr = REQUEST.get();
    if ptr.is_null() || CALL.get() != call {
        return None;
    }
    // SAFETY: the pointer was set from a `&Request` by `lend`, which clears
    // it (on return or unwind) before that borrow ends; it is non-null only
    // in between.
    #[allow(unsafe_code)]
    let req = unsafe { &*ptr };
    Some(f(req))
}

/// The response lent to call `call`, if that call is running.
pub fn response<T>(call: u64, f: impl FnOnce(&Response) -> T) -> Option<T> {
    let ptr = RESPONSE.get();
    if ptr.is_null() || CALL.get() != call {
        return None;
    }
    // SAFETY: as for `request`.
    #[allow(unsafe_code)]
    let resp = unsafe { &*ptr };
    Some(f(resp))
}
