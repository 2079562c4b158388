//! A tiny line-protocol "script host" over a [`HandleRegistry`]: the calls wren.go's `Async`
//! class gave Wren scripts (`await`, `isReady`, `get`, `cancel`, `getState`, `cleanup`), by
//! numeric id.
//!
//! ```text
//! cargo run --example registry_repl -- --demo    # runs the built-in session and exits
//! cargo run --example registry_repl              # interactive when stdin is a terminal
//! printf 'spawn square 7\nawait 1\n' | cargo run --example registry_repl -- --stdin
//! ```
//!
//! When stdin is not a terminal (CI, a pipe) it runs the built-in session unless `--stdin` asks
//! it to read commands from stdin.
//!
//! **Why a line protocol and not an embedded engine (rhai, mlua, pyo3)?** The registry's API is
//! already the whole binding: every scripting host — Lua, Python through pyo3, Wren, rhai, a C
//! caller through FFI — maps onto the same handful of calls taking and returning plain numbers
//! (a `HandleId` as a double, a state code 0–3) and strings. A REPL shows exactly those calls
//! without pulling an interpreter into the crate's build; binding them into rhai is one
//! `register_fn` per command below.
//!
//! Commands (ids are numbers, as a script would hold them):
//!
//! | command | does |
//! |---|---|
//! | `spawn sleep <ms>` | a timer future: completes after `<ms>` on the delay manager (no worker held) |
//! | `spawn square <n>` | computes `n²` on the pool (fails on overflow) |
//! | `spawn fail <msg>` | a task that returns the error `<msg>` |
//! | `spawn busy <ms>` | occupies a worker for `<ms>` (to try `cancel` on a running task) |
//! | `ready <id>` | `isReady`: `true` once it ended, in any state |
//! | `state <id>` | `getState`: the code (0 pending/running, 1 completed, 2 failed, 3 cancelled) and its name |
//! | `get <id>` | the value; `future not ready` while pending |
//! | `await <id>` | blocks until it ends, then the value or the error |
//! | `cancel <id>` | cancels it if it has not started |
//! | `cleanup <id>` | removes it (cancelling it first if it has not ended) |
//! | `list` | every id and its state |
//! | `help`, `quit` | |
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::Duration;

use taskrunner::registry::{HandleId, HandleRegistry, RegistryError};
use taskrunner::{Deferred, TaskHandle, TaskState, TaskTraits, ThreadPool};

const DEMO: &str = "\
help
spawn square 12
await 1
get 1
state 1
spawn sleep 60000
ready 2
state 2
get 2
cancel 2
state 2
await 2
spawn sleep 20
await 3
spawn fail disk full
await 4
state 4
spawn square 4294967296
await 5
list
cleanup 1
get 1
spawn sleep 60000
cleanup 6
list
await 99
get 1.5
get 9007199254740993
quit
";

const HELP: &str = "\
commands: spawn sleep <ms> | spawn square <n> | spawn fail <msg> | spawn busy <ms>
          ready <id> | state <id> | get <id> | await <id> | cancel <id> | cleanup <id>
          list | help | quit";

struct Host {
    pool: ThreadPool,
    registry: HandleRegistry<String>,
}

/// The state names a script maps the codes to (wren.go's demo did the same).
fn state_name(code: u8) -> &'static str {
    match code {
        0 => "pending",
        1 => "completed",
        2 => "failed",
        _ => "cancelled",
    }
}

/// An id as a script passes it: a number. Refuses what a double cannot hold exactly.
fn parse_id(arg: &str) -> Result<HandleId, String> {
    if let Ok(n) = arg.parse::<u64>() {
        let id = HandleId::from_u64(n);
        return match id.to_f64() {
            Some(_) => Ok(id),
            None => Err(format!(
                "id {n} is above 2^53: a script's number cannot hold it exactly"
            )),
        };
    }
    arg.parse::<f64>()
        .ok()
        .and_then(HandleId::from_f64)
        .ok_or_else(|| format!("not a valid id: {arg} (ids are whole numbers up to 2^53)"))
}

impl Host {
    /// Registers a handle and prints its id; a full registry cancels the task.
    fn register(&self, handle: TaskHandle<String>) -> String {
        match self.registry.insert(handle) {
            Ok(id) => format!("id {id}"),
            Err(full) => {
                let msg = full.to_string();
                full.into_inner().cancel();
                format!("error: {msg}")
            }
        }
    }

    /// Registers a deferred task first, then posts it (so a full registry never runs it).
    fn register_deferred(&self, task: Deferred, handle: TaskHandle<String>) -> String {
        match self.registry.insert(handle) {
            Ok(id) => match task.run_on(&self.pool) {
                Ok(()) => format!("id {id}"),
                Err(refused) => format!("error: refused ({refused:?})"),
            },
            Err(full) => format!("error: {full}"),
        }
    }

    fn spawn(&self, what: &str, arg: &str) -> String {
        match what {
            "sleep" => {
                let Ok(ms) = arg.parse::<u64>() else {
                    return format!("error: not a duration in ms: {arg}");
                };
                match self.pool.post_delayed_task_with_result(
                    TaskTraits::default(),
                    Duration::from_millis(ms),
                    move || format!("slept {ms} ms"),
                ) {
                    Ok(h) => self.register(h),
                    Err(e) => format!("error: refused ({:?})", e.reason()),
                }
            }
            "square" => {
                let Ok(n) = arg.parse::<i64>() else {
                    return format!("error: not an integer: {arg}");
                };
                let (task, h) = Deferred::fallible(move || {
                    n.checked_mul(n)
                        .map(|v| v.to_string())
                        .ok_or_else(|| format!("{n}² overflows a 64-bit integer"))
                });
                self.register_deferred(task, h)
            }
            "fail" => {
                let msg = arg.to_string();
                let (task, h) = Deferred::fallible(move || Err::<String, _>(msg));
                self.register_deferred(task, h)
            }
            "busy" => {
                let Ok(ms) = arg.parse::<u64>() else {
                    return format!("error: not a duration in ms: {arg}");
                };
                let (task, h) = Deferred::new(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    format!("busy for {ms} ms")
                });
                self.register_deferred(task, h)
            }
            _ => format!("error: unknown task kind {what:?} (sleep, square, fail, busy)"),
        }
    }

    fn show(result: Result<String, RegistryError>) -> String {
        match result {
            Ok(v) => v,
            Err(e) => format!("error: {e}"),
        }
    }

    fn by_id(&self, cmd: &str, arg: &str) -> String {
        let id = match parse_id(arg) {
            Ok(id) => id,
            Err(e) => return format!("error: {e}"),
        };
        let r = &self.registry;
        match cmd {
            "ready" => Self::show(r.is_ready(id).map(|b| b.to_string())),
            "state" => Self::show(r.state_code(id).map(|c| format!("{c} ({})", state_name(c)))),
            "get" => Self::show(r.get(id)),
            "await" => Self::show(r.wait(id)),
            "cancel" => Self::show(r.cancel(id).map(|b| b.to_string())),
            "cleanup" => r.cleanup(id).to_string(),
            _ => unreachable!(),
        }
    }

    fn list(&self) -> String {
        let ids = self.registry.ids();
        if ids.is_empty() {
            return "(empty)".to_string();
        }
        ids.iter()
            .map(|&id| match self.registry.state(id) {
                Ok(s) => {
                    let code = self.registry.state_code(id).unwrap_or(0);
                    let detail = match s {
                        TaskState::Running => " (running)",
                        TaskState::Panicked => " (panicked)",
                        _ => "",
                    };
                    format!("  {id}: {code} {}{detail}", state_name(code))
                }
                Err(e) => format!("  {id}: error: {e}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs one command; `None` means quit.
    fn execute(&self, line: &str) -> Option<String> {
        let line = line.trim();
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        Some(match cmd {
            "" => String::new(),
            "quit" | "exit" => return None,
            "help" => HELP.to_string(),
            "list" => self.list(),
            "spawn" => {
                let (what, arg) = rest.split_once(' ').unwrap_or((rest, ""));
                self.spawn(what, arg.trim())
            }
            "ready" | "state" | "get" | "await" | "cancel" | "cleanup" => self.by_id(cmd, rest),
            _ => format!("error: unknown command {cmd:?} (try help)"),
        })
    }
}

fn main() {
    let demo_flag = std::env::args().any(|a| a == "--demo");
    let stdin_flag = std::env::args().any(|a| a == "--stdin");
    let host = Host {
        pool: ThreadPool::builder().max_workers(2).build().unwrap(),
        registry: HandleRegistry::new(1000),
    };
    let stdin = io::stdin();
    let interactive = stdin.is_terminal() && !demo_flag;
    let echo = !interactive;
    let lines: Box<dyn Iterator<Item = String>> = if demo_flag || (!interactive && !stdin_flag) {
        println!("registry_repl: running the built-in session");
        Box::new(DEMO.lines().map(str::to_string))
    } else {
        if interactive {
            println!("registry_repl: {HELP}");
        }
        Box::new(stdin.lock().lines().map_while(Result::ok))
    };
    let mut out = io::stdout();
    if interactive {
        print!("> ");
        out.flush().unwrap();
    }
    for line in lines {
        if echo {
            println!("> {line}");
        }
        match host.execute(&line) {
            Some(reply) => {
                if !reply.is_empty() {
                    println!("{reply}");
                }
            }
            None => break,
        }
        if interactive {
            print!("> ");
            out.flush().unwrap();
        }
    }
    host.pool.shutdown();
}
