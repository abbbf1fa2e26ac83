//! The plugin's JavaScript modules, as `weir build-js` writes them into this
//! runtime's component.
//!
//! The runtime carries a fixed-size slot (a mutable static, so it sits in a
//! data segment and is never constant-folded) that starts with a unique
//! marker. `weir build-js` finds the marker in the component's bytes and
//! overwrites the slot, keeping its size, with:
//!
//! ```text
//! "WEIRJS01" | u32 count | count × (u32 name length, name, u32 source length, source)
//! ```
//!
//! all lengths little-endian, names `/`-separated paths relative to the
//! entry's directory, the entry module first. Patching a slot rather than
//! re-encoding the module keeps the build a byte copy: no wasm tooling, no
//! pre-initialisation, and a component that any host can load.

/// Bytes reserved for the bundle (its header included).
pub const SLOT_CAPACITY: usize = 1 << 20;

/// What a built bundle starts with.
pub const HEADER: &[u8; 8] = b"WEIRJS01";

/// The slot's contents before `weir build-js` fills it: this marker, then
/// zeros. The builder requires exactly one occurrence in the component.
pub const EMPTY_MARKER: &[u8; 32] = b"weir-js: no bundle written here\0";

const fn empty_slot() -> [u8; SLOT_CAPACITY] {
    let mut slot = [0u8; SLOT_CAPACITY];
    let mut i = 0;
    while i < EMPTY_MARKER.len() {
        slot[i] = EMPTY_MARKER[i];
        i += 1;
    }
    slot
}

// Exported under a fixed name so it survives linking, and mutable so the
// compiler cannot assume its contents.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
static mut WEIR_JS_BUNDLE: [u8; SLOT_CAPACITY] = empty_slot();

/// The slot's bytes as this instance sees them.
pub fn slot() -> &'static [u8] {
    // SAFETY: nothing in the runtime writes the slot; `weir build-js`
    // patched it in the file, before the module was ever instantiated. A
    // shared reference to it is therefore never aliased by a mutable one.
    // `black_box`: the compiler must not assume the initial contents,
    // whatever it infers about a static nothing in the program writes.
    #[allow(unsafe_code)]
    unsafe {
        &*core::hint::black_box(core::ptr::addr_of!(WEIR_JS_BUNDLE))
    }
}

/// One module of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its path relative to the entry's directory, e.g. `lib/util.js`.
    pub name: String,
    /// Its source text.
    pub source: String,
}

/// Why the slot holds no usable bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// The runtime was loaded as is, never given a plugin.
    Empty,
    /// The bytes are not a bundle this runtime reads.
    Malformed(&'static str),
}

impl std::fmt::Display for BundleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleError::Empty => write!(
                f,
                "this is Weir's JavaScript runtime without a plugin: build one with \
                 `weir build-js plugin.js`"
            ),
            BundleError::Malformed(why) => write!(f, "the bundled JavaScript is malformed: {why}"),
        }
    }
}

/// Read the modules out of a slot's bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<Module>, BundleError> {
    // A prefix, not the whole marker: the marker must occur in the
    // component only once, in the slot, for the builder to find it.
    if bytes.starts_with(b"weir-js: ") {
        return Err(BundleError::Empty);
    }
    let rest = bytes
        .strip_prefix(HEADER)
        .ok_or(BundleError::Malformed("no header"))?;
    let mut reader = Reader(rest);
    let count = reader.u32()?;
    if count == 0 {
        return Err(BundleError::Malformed("no modules"));
    }
    let mut modules = Vec::new();
    for _ in 0..count {
        let name = reader.text()?;
        let source = reader.text()?;
        modules.push(Module { name, source });
    }
    Ok(modules)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BundleError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or(BundleError::Malformed("truncated"))?;
        self.0 = rest;
        Ok(u32::from_le_bytes(*head))
    }

    fn text(&mut self) -> Result<String, BundleError> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return Err(BundleError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(head.to_vec()).map_err(|_| BundleError::Malformed("not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(modules: &[(&str, &str)]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        out.extend((modules.len() as u32).to_le_bytes());
        for (name, source) in modules {
            for text in [name, source] {
                out.extend((text.len() as u32).to_le_bytes());
                out.extend(text.as_bytes());
            }
        }
        out.resize(out.len() + 16, 0);
        out
    }

    #[test]
    fn reads_the_modules_in_order_and_ignores_the_padding() {
        let bytes = encode(&[("plugin.js", "export const a = 1;"), ("lib/b.js", "")]);
        let modules = parse(&bytes).unwrap();
        assert_eq!(modules.len(), 2);
        assert_eq!(modules[0].name, "plugin.js");
        assert_eq!(modules[0].source, "export const a = 1;");
        assert_eq!(modules[1].name, "lib/b.js");
    }

    #[test]
    fn an_unfilled_slot_says_how_to_build_a_plugin() {
        // The static itself: a native build has the same unfilled slot.
        assert!(slot().starts_with(EMPTY_MARKER));
        assert_eq!(slot().len(), SLOT_CAPACITY);
        assert_eq!(parse(slot()), Err(BundleError::Empty));
        assert!(BundleError::Empty.to_string().contains("weir build-js"));
    }

    #[test]
    fn truncated_or_foreign_bytes_are_refused() {
        assert_eq!(parse(b"nonsense"), Err(BundleError::Malformed("no header")));
        let mut bytes = encode(&[("plugin.js", "x")]);
        bytes.truncate(HEADER.len() + 4 + 4 + 3);
        assert_eq!(parse(&bytes), Err(BundleError::Malformed("truncated")));
        let mut none = HEADER.to_vec();
        none.extend(0u32.to_le_bytes());
        assert_eq!(parse(&none), Err(BundleError::Malformed("no modules")));
    }
}
