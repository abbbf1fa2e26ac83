//! `weir.toml` on any text: refused with a message naming the file, or
//! parsed and validated. A parsed config survives the round trip a reload
//! makes through JSON when it puts restart-only values back, and keeping
//! its own restart-only values changes nothing.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weir::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Path::new("weir.toml");
    match Config::parse(text, source, Path::new("/etc/weir")) {
        Err(e) => assert!(e.to_string().starts_with("weir.toml"), "{e}"),
        Ok(config) => {
            let value = serde_json::to_value(&config).unwrap();
            let back: Config = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), value);
            let mut again = config.clone();
            let set_aside = again.keep_restart_only(&config).unwrap();
            assert!(set_aside.is_empty(), "{set_aside:?}");
        }
    }
});
