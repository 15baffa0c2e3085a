//! The one place that touches the generated component bindings.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    world: "app",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__export_app",
    default_bindings_module: "squall_sdk::__private::bindings",
    runtime_path: "squall_sdk::__private::wit_bindgen::rt",
});
