//! YAML 1.2 and JSON documents loaded as OpenAPI 3.0 and 3.1 documents by
//! the validate plugin, and its own config compiled, as `init` does. Any
//! text is refused with a message or loaded; nothing panics, and a loaded
//! document answers a lookup.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_plugin_validate::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = fuzzing::yaml(text);
    let _ = fuzzing::openapi(text, "GET", "/items/7");
    let _ = fuzzing::config(text);
});
