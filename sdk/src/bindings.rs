//! Raw bindings generated from `wit/` by wit-bindgen. Most plugins use the
//! wrappers at the crate root instead.
#![allow(missing_docs, unsafe_code, clippy::all)]

wit_bindgen::generate!({
    path: "wit",
    world: "weir:plugin/plugin",
    pub_export_macro: true,
    export_macro_name: "__export_world",
    default_bindings_module: "::weir_sdk::bindings",
    generate_all,
});
