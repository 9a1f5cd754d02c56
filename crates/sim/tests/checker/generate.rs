//! Guards against a checker tested only on hand-picked cases: generates random histories that
//! are linearizable by construction, by running a sequential reference store at a point chosen
//! inside each operation's interval.

use bytes::Bytes;
use fs::{Command, Name, Reply};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::history::History;
use std::collections::HashMap;

/// The shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub ops: usize,
    pub files: usize,
    pub clients: usize,
    /// Percentage of operations whose outcome the client never learns.
    pub unknown_percent: u32,
    /// Longest time an operation takes.
    pub duration_max: u64,
    /// Longest pause of a client between operations.
    pub gap_max: u64,
    /// Relative weights of read, write, cas and delete.
    pub mix: [u32; 4],
    /// Whether the store's counter sometimes skips numbers (docs/protocol.md only promises growth).
    pub version_gaps: bool,
}

impl Params {
    /// A mix like a simulator client's: mostly reads and writes.
    pub const MIX: [u32; 4] = [4, 3, 2, 1];

    /// `ops` operations over `files` files by `clients` clients, other settings typical.
    pub fn new(ops: usize, files: usize, clients: usize) -> Params {
        Params {
            ops,
            files,
            clients,
            unknown_percent: 2,
            duration_max: 20,
            gap_max: 10,
            mix: Params::MIX,
            version_gaps: false,
        }
    }
}

/// One generated operation.
#[derive(Clone, Debug)]
pub struct Spec {
    pub client: u64,
    pub invoke: u64,
    pub complete: u64,
    pub command: Command,
    /// `None` when the client gave up.
    pub reply: Option<Reply>,
}

/// What an operation's command will be, before the store decides the reply.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
    Cas,
    Delete,
}

/// A random linearizable history.
pub fn generate(seed: u64, params: &Params) -> Vec<Spec> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names: Vec<Name> = (0..params.files)
        .map(|i| Name::new(format!("file{i}")).unwrap())
        .collect();
    let mut clock = vec![0u64; params.clients];
    // (linearization point or None if it never takes effect, index, name, kind, hidden)
    let mut planned = Vec::with_capacity(params.ops);
    let mut specs = Vec::with_capacity(params.ops);
    for index in 0..params.ops {
        let client = rng.random_range(0..params.clients);
        let invoke = clock[client] + rng.random_range(0..=params.gap_max);
        let complete = invoke + rng.random_range(0..=params.duration_max);
        clock[client] = complete + 1;
        let kind = pick(&mut rng, params.mix);
        let hidden = rng.random_ratio(params.unknown_percent, 100);
        let point = if !hidden {
            Some(rng.random_range(invoke..=complete))
        } else if rng.random_bool(0.5) {
            // An unknown outcome may take effect long after the client gave up.
            Some(rng.random_range(invoke..=complete + 3 * params.duration_max))
        } else {
            None
        };
        let name = names[rng.random_range(0..names.len())].clone();
        planned.push((point, index, name, kind, hidden));
        specs.push(Spec {
            client: client as u64,
            invoke,
            complete,
            command: Command::Read {
                name: names[0].clone(),
            },
            reply: None,
        });
    }
    // Run the reference store in linearization order; operations that never take effect get a
    // command too.
    planned.sort_by_key(|&(point, index, ..)| (point.is_none(), point, index));
    let mut store = Store::default();
    for (point, index, name, kind, hidden) in planned {
        let command = store.command(&mut rng, name, kind, index);
        let reply = match point {
            Some(_) => {
                let step = if params.version_gaps {
                    rng.random_range(1..=3)
                } else {
                    1
                };
                store.apply(&command, step)
            }
            None => Reply::Internal,
        };
        specs[index].command = command;
        specs[index].reply = (!hidden).then_some(reply);
    }
    specs
}

/// A kind of command drawn with the weights of `mix`.
fn pick(rng: &mut ChaCha8Rng, mix: [u32; 4]) -> Kind {
    let total: u32 = mix.iter().sum();
    let mut draw = rng.random_range(0..total.max(1));
    for (weight, kind) in mix
        .into_iter()
        .zip([Kind::Read, Kind::Write, Kind::Cas, Kind::Delete])
    {
        if draw < weight {
            return kind;
        }
        draw -= weight;
    }
    Kind::Read
}

/// Records generated operations as the simulator would.
pub fn record(specs: &[Spec]) -> History {
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| (specs[i].invoke, i));
    let mut history = History::new();
    let ids: Vec<_> = order
        .iter()
        .map(|&i| {
            (
                i,
                history.invoke(specs[i].client, specs[i].invoke, specs[i].command.clone()),
            )
        })
        .collect();
    for (i, id) in ids {
        match &specs[i].reply {
            Some(reply) => history
                .complete(id, specs[i].complete, reply.clone())
                .unwrap(),
            None => history.give_up(id).unwrap(),
        }
    }
    history
}

/// The sequential reference: docs/protocol.md's store without expiry.
#[derive(Clone, Default)]
pub struct Store {
    files: HashMap<Name, (u64, Bytes)>,
    counter: u64,
}

impl Store {
    /// The last version given.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// A command of `kind`; a cas usually expects the current version, as a cas loop would.
    fn command(&self, rng: &mut ChaCha8Rng, name: Name, kind: Kind, index: usize) -> Command {
        // Mostly unique contents, sometimes a shared one so that reads are ambiguous.
        let content = if rng.random_ratio(1, 10) {
            Bytes::from_static(b"shared")
        } else {
            Bytes::from(format!("v{index}"))
        };
        match kind {
            Kind::Read => Command::Read { name },
            Kind::Write => Command::Write {
                name,
                content,
                exptime_s: 0,
            },
            Kind::Cas => {
                let version = match self.files.get(&name) {
                    Some(&(current, _)) if rng.random_ratio(2, 3) => current,
                    _ => rng.random_range(0..=self.counter + 1),
                };
                Command::Cas {
                    name,
                    version,
                    content,
                    exptime_s: 0,
                }
            }
            Kind::Delete => Command::Delete { name },
        }
    }

    /// Applies `command`; a successful mutation advances the counter by `step`.
    pub fn apply(&mut self, command: &Command, step: u64) -> Reply {
        match command {
            Command::Read { name } => match self.files.get(name) {
                Some((version, content)) => Reply::Contents {
                    version: *version,
                    exptime_s: 0,
                    content: content.clone(),
                },
                None => Reply::FileNotFound,
            },
            Command::Write { name, content, .. } => {
                self.counter += step;
                self.files
                    .insert(name.clone(), (self.counter, content.clone()));
                Reply::Written {
                    version: self.counter,
                }
            }
            Command::Cas {
                name,
                version,
                content,
                ..
            } => match self.files.get(name) {
                None => Reply::FileNotFound,
                Some(&(current, _)) if current != *version => Reply::VersionMismatch { current },
                Some(_) => {
                    self.counter += step;
                    self.files
                        .insert(name.clone(), (self.counter, content.clone()));
                    Reply::Written {
                        version: self.counter,
                    }
                }
            },
            Command::Delete { name } => match self.files.remove(name) {
                Some(_) => Reply::Deleted,
                None => Reply::FileNotFound,
            },
        }
    }
}
