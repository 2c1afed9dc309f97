//! The engine's hook dispatch as patched in `vendor/rmqtt` (PATCHED.md item 5): our handler
//! decides only if it runs, and runs first, so these rules of upstream's dispatch must hold
//! after the patch took its lock out of `exec`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rmqtt::hook::{
    DefaultHookManager, Handler, HookManager, HookResult, Parameter, Priority, Register,
    ReturnType, Type,
};

/// Records its name on every dispatch; `proceed` says whether later handlers run.
struct Recorder {
    name: &'static str,
    proceed: bool,
    seen: Arc<Mutex<Vec<&'static str>>>,
}

#[async_trait]
impl Handler for Recorder {
    #[allow(elided_lifetimes_in_paths)]
    async fn hook(&self, _param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        self.seen.lock().unwrap().push(self.name);
        (self.proceed, acc)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Dispatches `BeforeStartup` once and returns who ran, in order.
async fn dispatch(
    manager: &DefaultHookManager,
    seen: &Arc<Mutex<Vec<&'static str>>>,
) -> Vec<&'static str> {
    seen.lock().unwrap().clear();
    manager.before_startup().await;
    seen.lock().unwrap().clone()
}

/// Adds a [`Recorder`] named `name` at `priority` to `register` (not started).
async fn add(
    register: &dyn Register,
    name: &'static str,
    priority: Priority,
    proceed: bool,
    seen: &Arc<Mutex<Vec<&'static str>>>,
) {
    let recorder = Recorder { name, proceed, seen: Arc::clone(seen) };
    register.add_priority(Type::BeforeStartup, priority, Box::new(recorder)).await;
}

#[test]
fn handlers_run_by_descending_priority_and_only_while_started() {
    runtime().block_on(async {
        let manager = DefaultHookManager::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let register = manager.register();
        for (name, priority) in [("low", 1), ("ours", 1_000), ("middle", 10)] {
            add(&*register, name, priority, true, &seen).await;
        }
        assert!(dispatch(&manager, &seen).await.is_empty(), "ran before start()");
        register.start().await;
        assert_eq!(dispatch(&manager, &seen).await, ["ours", "middle", "low"]);
        register.stop().await;
        assert!(dispatch(&manager, &seen).await.is_empty(), "ran after stop()");
        register.start().await;
        assert_eq!(dispatch(&manager, &seen).await, ["ours", "middle", "low"]);
    });
}

#[test]
fn a_handler_that_does_not_proceed_ends_the_chain_and_later_registers_join_it() {
    runtime().block_on(async {
        let manager = DefaultHookManager::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let first = manager.register();
        add(&*first, "decider", 1_000, false, &seen).await;
        first.start().await;
        // A second register (another plugin) adds handlers after the first one started.
        let second = manager.register();
        add(&*second, "before", 2_000, true, &seen).await;
        add(&*second, "after", 1, true, &seen).await;
        assert_eq!(dispatch(&manager, &seen).await, ["decider"], "the second's are not started");
        second.start().await;
        assert_eq!(dispatch(&manager, &seen).await, ["before", "decider"]);
        first.stop().await;
        assert_eq!(dispatch(&manager, &seen).await, ["before", "after"]);
    });
}
