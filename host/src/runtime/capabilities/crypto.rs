//! `crypto`: JOSE signature verification done natively (`runtime/jose.rs`),
//! with keys as host resources.

use crate::runtime::bindings::weir::plugin::crypto;
use crate::runtime::host::HostState;

type Res<T> = wasmtime::Result<T>;

/// Most keys one instance may hold, so a plugin cannot grow host memory
/// without bound.
const MAX_CRYPTO_KEYS: usize = 4096;

impl crypto::Host for HostState {}

impl crypto::HostVerifyingKey for HostState {
    fn from_jwk(
        &mut self,
        jwk: String,
    ) -> Res<Result<wasmtime::component::Resource<crate::runtime::jose::VerifyingKey>, String>>
    {
        if self.crypto_keys >= MAX_CRYPTO_KEYS {
            return Ok(Err(format!(
                "an instance may hold at most {MAX_CRYPTO_KEYS} keys"
            )));
        }
        match crate::runtime::jose::VerifyingKey::from_jwk(&jwk) {
            Ok(key) => {
                self.crypto_keys += 1;
                Ok(Ok(self.table.push(key)?))
            }
            Err(why) => Ok(Err(why)),
        }
    }

    fn accepts(
        &mut self,
        key: wasmtime::component::Resource<crate::runtime::jose::VerifyingKey>,
        alg: String,
    ) -> Res<bool> {
        Ok(self.table.get(&key)?.accepts(&alg))
    }

    fn verify(
        &mut self,
        key: wasmtime::component::Resource<crate::runtime::jose::VerifyingKey>,
        alg: String,
        message: Vec<u8>,
        signature: Vec<u8>,
    ) -> Res<bool> {
        Ok(self.table.get(&key)?.verify(&alg, &message, &signature))
    }

    fn drop(
        &mut self,
        key: wasmtime::component::Resource<crate::runtime::jose::VerifyingKey>,
    ) -> Res<()> {
        self.table.delete(key)?;
        self.crypto_keys = self.crypto_keys.saturating_sub(1);
        Ok(())
    }
}
