//! `uniffi-bindgen generate --library <libvigie.so> --language kotlin|swift|python --out-dir <dir>`:
//! the generator at the exact uniffi version the library was built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}
