//! Adapters from the previous contract versions to the host's current
//! (0.5.0) implementation, so plugins built for 0.4.0, 0.3.0, 0.2.0 or
//! 0.1.0 load and run unchanged. The WIT of each old version
//! (`host/wit-0.4.0/`, `host/wit-0.3.0/`,
//! `host/wit-0.2.0/`, `host/wit-0.1.0/`) generates its own Rust types and host traits; each
//! adapter implements those traits for [`HostState`](super::HostState) by
//! calling the 0.5.0 implementation and converting the values, so a
//! capability is written once and every version gets the same behaviour
//! (grants, budgets, deadlines, namespacing).
//!
//! One file per version, each adapting straight to 0.5.0 rather than to
//! the version after it: a call crosses one conversion whatever the
//! plugin's age, and dropping support for a version deletes one file.
//! What an old plugin cannot express (a later error case, a later action)
//! is listed in each file and in docs/plugins.md.

pub mod v0_1;
pub mod v0_2;
pub mod v0_3;
pub mod v0_4;

/// What a host function returns: a trap (`Err`) or the WIT result.
type Res<T> = wasmtime::Result<T>;

#[cfg(test)]
mod tests {
    use crate::runtime::bindings::{Action, Hooks, Reply, Wait, v0_1, v0_2, v0_3, v0_4};

    #[test]
    fn old_actions_and_hooks_map_to_the_same_cases() {
        use v0_2::weir::plugin::types as old;
        assert_eq!(
            super::v0_2::hooks(old::Hooks::ON_REQUEST),
            Hooks::ON_REQUEST
        );
        assert_eq!(
            super::v0_2::hooks(old::Hooks::ON_REQUEST | old::Hooks::ON_RESPONSE),
            Hooks::all()
        );
        assert_eq!(super::v0_2::hooks(old::Hooks::empty()), Hooks::empty());
        assert!(matches!(
            super::v0_2::action(old::Action::Continue),
            Action::Continue
        ));
        let reply = old::Reply {
            status: 418,
            headers: vec![("x".into(), "y".into())],
            body: b"teapot".to_vec(),
        };
        let Action::Respond(Reply {
            status,
            headers,
            body,
        }) = super::v0_2::action(old::Action::Respond(reply))
        else {
            panic!("not a respond")
        };
        assert_eq!(
            (status, headers.len(), body.as_slice()),
            (418, 1, &b"teapot"[..])
        );
        let reply = v0_1::weir::plugin::types::Reply {
            status: 204,
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert!(matches!(
            super::v0_1::action(v0_1::weir::plugin::types::Action::Respond(reply)),
            Action::Respond(Reply { status: 204, .. })
        ));
        // 0.3.0 has all four actions of 0.4.0.
        use v0_3::weir::plugin::types as v3;
        let wait = v3::Wait {
            key: "lock".into(),
            timeout_ms: 250,
        };
        assert!(matches!(
            super::v0_3::action(v3::Action::Wait(wait)),
            Action::Wait(Wait { ref key, timeout_ms: 250 }) if key == "lock"
        ));
        let reply = v3::Reply {
            status: 200,
            headers: Vec::new(),
            body: b"stale".to_vec(),
        };
        assert!(matches!(
            super::v0_3::action(v3::Action::RespondThenContinue(reply)),
            Action::RespondThenContinue(Reply { status: 200, .. })
        ));
        assert_eq!(
            super::v0_3::hooks(v3::Hooks::ON_RESPONSE),
            Hooks::ON_RESPONSE
        );
        // 0.4.0 has the same actions and hooks as 0.5.0.
        use v0_4::weir::plugin::types as v4;
        assert!(matches!(
            super::v0_4::action(v4::Action::Wait(v4::Wait {
                key: "k".into(),
                timeout_ms: 9,
            })),
            Action::Wait(Wait { ref key, timeout_ms: 9 }) if key == "k"
        ));
        assert_eq!(
            super::v0_4::hooks(v4::Hooks::ON_REQUEST | v4::Hooks::ON_RESPONSE),
            Hooks::all()
        );
    }
}
