//! The proxy-wasm ABI's numbers and wire formats (ABI 0.2.1, the one the
//! Rust, Go, C++, AssemblyScript and Zig SDKs build against): statuses,
//! buffer and map kinds, and the header-map serialization, plus the two
//! moves every host call makes with guest memory: read a slice the filter
//! points at, and hand it bytes (allocated by the filter's own
//! `proxy_on_memory_allocate`, written, and their address and size stored
//! where it asked).

use wasmtime::{Caller, Extern, Memory};

use super::state::FilterState;

/// `proxy_status_t`: what every host call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// No such key, header, property or call.
    NotFound = 1,
    /// An argument is out of range or malformed.
    BadArgument = 2,
    /// Shared data changed since it was read (compare-and-swap).
    CasMismatch = 8,
    /// The host failed.
    InternalFailure = 10,
    /// The host does not offer this call (listed in docs/plugins.md).
    Unimplemented = 12,
}

/// `proxy_buffer_type_t`.
pub mod buffer {
    /// The request body being filtered.
    pub const HTTP_REQUEST_BODY: u32 = 0;
    /// The response body being filtered.
    pub const HTTP_RESPONSE_BODY: u32 = 1;
    /// The body of a `proxy_http_call` response.
    pub const HTTP_CALL_RESPONSE_BODY: u32 = 4;
    /// The VM configuration (empty here: one VM per filter).
    pub const VM_CONFIGURATION: u32 = 6;
    /// `NAME.json`'s bytes, unchanged.
    pub const PLUGIN_CONFIGURATION: u32 = 7;
}

/// `proxy_map_type_t`.
pub mod map {
    /// The request's headers.
    pub const HTTP_REQUEST_HEADERS: u32 = 0;
    /// The request's trailers.
    pub const HTTP_REQUEST_TRAILERS: u32 = 1;
    /// The response's headers.
    pub const HTTP_RESPONSE_HEADERS: u32 = 2;
    /// The response's trailers.
    pub const HTTP_RESPONSE_TRAILERS: u32 = 3;
    /// A `proxy_http_call` response's headers.
    pub const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
    /// A `proxy_http_call` response's trailers.
    pub const HTTP_CALL_RESPONSE_TRAILERS: u32 = 7;
}

/// `proxy_stream_type_t`, for `proxy_continue_stream` / `proxy_close_stream`.
pub mod stream {
    /// The request half of an HTTP stream.
    pub const HTTP_REQUEST: u32 = 0;
    /// The response half of an HTTP stream.
    pub const HTTP_RESPONSE: u32 = 1;
}

/// `proxy_action_t`, what a stream callback returns.
pub mod action {
    /// Stop here until `proxy_continue_stream` (or buffer the body).
    pub const PAUSE: u32 = 1;
}

/// `proxy_metric_type_t`.
pub mod metric {
    /// A counter.
    pub const COUNTER: u32 = 0;
    /// A gauge.
    pub const GAUGE: u32 = 1;
    /// A histogram.
    pub const HISTOGRAM: u32 = 2;
}

/// A header map in the ABI's layout: the pair count, every pair's key and
/// value sizes (u32 little-endian), then each key and value followed by a
/// NUL.
pub fn serialize_map<'a>(pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    let pairs: Vec<(&[u8], &[u8])> = pairs.into_iter().collect();
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 10 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in &pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in &pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// The pairs of a serialized header map; `None` when the bytes are not one
/// (a filter's bytes are never trusted: every size is checked).
pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let sizes = 4 + n * 8;
        let key_len = u32::from_le_bytes(bytes.get(sizes..sizes + 4)?.try_into().ok()?) as usize;
        let value_len =
            u32::from_le_bytes(bytes.get(sizes + 4..sizes + 8)?.try_into().ok()?) as usize;
        let key = bytes.get(data..data.checked_add(key_len)?)?.to_vec();
        data = data.checked_add(key_len + 1)?;
        let value = bytes.get(data..data.checked_add(value_len)?)?.to_vec();
        data = data.checked_add(value_len + 1)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// The filter's exported linear memory.
fn memory(caller: &mut Caller<'_, FilterState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(wasmtime::Error::msg("the filter exports no memory")),
    }
}

/// `len` bytes of guest memory at `ptr`; a range outside memory is an
/// error the caller answers with `BadArgument`.
pub fn read(caller: &mut Caller<'_, FilterState>, ptr: u32, len: u32) -> Option<Vec<u8>> {
    let memory = memory(caller).ok()?;
    let start = ptr as usize;
    let end = start.checked_add(len as usize)?;
    memory.data(&caller).get(start..end).map(<[u8]>::to_vec)
}

/// The UTF-8 text at `ptr`.
pub fn read_str(caller: &mut Caller<'_, FilterState>, ptr: u32, len: u32) -> Option<String> {
    String::from_utf8(read(caller, ptr, len)?).ok()
}

/// Write a little-endian u32 at `ptr`.
pub fn write_u32(caller: &mut Caller<'_, FilterState>, ptr: u32, value: u32) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

/// Write a little-endian u64 at `ptr`.
pub fn write_u64(caller: &mut Caller<'_, FilterState>, ptr: u32, value: u64) -> bool {
    write(caller, ptr, &value.to_le_bytes())
}

fn write(caller: &mut Caller<'_, FilterState>, ptr: u32, bytes: &[u8]) -> bool {
    let Ok(memory) = memory(caller) else {
        return false;
    };
    memory.write(caller, ptr as usize, bytes).is_ok()
}

/// Give the filter `bytes`: allocate them in its memory with its own
/// allocator, copy them in, and store the address and size at `ptr_out`
/// and `size_out`. Empty bytes are given as a null pointer and size 0, as
/// the SDKs expect for "present but empty".
pub async fn give(
    caller: &mut Caller<'_, FilterState>,
    bytes: &[u8],
    ptr_out: u32,
    size_out: u32,
) -> wasmtime::Result<Status> {
    let address = if bytes.is_empty() {
        0
    } else {
        let allocate = caller
            .get_export("proxy_on_memory_allocate")
            .or_else(|| caller.get_export("malloc"))
            .and_then(Extern::into_func)
            .ok_or_else(|| {
                wasmtime::Error::msg(
                    "the filter exports neither proxy_on_memory_allocate nor malloc",
                )
            })?;
        let allocate = allocate.typed::<u32, u32>(&caller)?;
        let len = u32::try_from(bytes.len()).map_err(|_| wasmtime::Error::msg("too large"))?;
        let address = allocate.call_async(&mut *caller, len).await?;
        if address == 0 || !write(caller, address, bytes) {
            return Ok(Status::InternalFailure);
        }
        address
    };
    let len = bytes.len() as u32;
    if !write_u32(caller, ptr_out, address) || !write_u32(caller, size_out, len) {
        return Ok(Status::BadArgument);
    }
    Ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_in_the_sdk_layout() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/a"), (b"x", b"")];
        let bytes = serialize_map(pairs.clone());
        // Count, sizes, then NUL-terminated keys and values (the layout
        // the Rust SDK's `serialize_map` writes).
        assert_eq!(&bytes[0..4], &2u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &5u32.to_le_bytes());
        assert_eq!(&bytes[20..], b":path\0/a\0x\0\0");
        let back = deserialize_map(&bytes).unwrap();
        assert_eq!(
            back,
            vec![(b":path".to_vec(), b"/a".to_vec()), (b"x".to_vec(), vec![])]
        );
    }

    #[test]
    fn malformed_maps_are_refused_not_trusted() {
        assert_eq!(deserialize_map(&[]), Some(vec![]));
        // A count far past the bytes given.
        assert_eq!(deserialize_map(&u32::MAX.to_le_bytes()), None);
        // A size past the end.
        let mut bytes = 1u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&100u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(b"a\0\0");
        assert_eq!(deserialize_map(&bytes), None);
    }
}
