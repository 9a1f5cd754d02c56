//! One command per process: `raftfs client read|write|cas|delete`, for scripts. Content goes
//! in and out as exact bytes (binary-safe: stdin, a file, stdout); versions go to stdout, one
//! number a line, so `v=$(raftfs client write f --value x)` works.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Args, Subcommand};
use fs::{Command, Name, Reply};

use super::{CommandError, Session};

/// The one-shot subcommands of `raftfs client`.
#[derive(Debug, Subcommand)]
pub enum OneShot {
    /// Print a file's content on stdout, exactly its bytes. Exit status 1 if there is no
    /// such file.
    Read {
        /// The file.
        name: OsString,
        /// Also print the version and the time left before it expires, on stderr.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Create or replace a file; prints its new version.
    #[command(
        override_usage = "raftfs client write [OPTIONS] <NAME> (--value <TEXT> | --file <PATH> | -)"
    )]
    Write {
        /// The file.
        name: OsString,
        /// The new content.
        #[command(flatten)]
        content: Content,
        /// Expire the file this many seconds from now (0: never).
        #[arg(long, value_name = "S", default_value_t = 0)]
        exptime: u64,
    },
    /// Replace a file only if its version is VERSION; prints its new version. Exit status 1
    /// if the version differs (ERR_VERSION CURRENT) or there is no such file.
    #[command(
        override_usage = "raftfs client cas [OPTIONS] <NAME> <VERSION> (--value <TEXT> | --file <PATH> | -)"
    )]
    Cas {
        /// The file.
        name: OsString,
        /// The version the file must have now.
        version: u64,
        /// The new content.
        #[command(flatten)]
        content: Content,
        /// Expire the file this many seconds from now (0: never).
        #[arg(long, value_name = "S", default_value_t = 0)]
        exptime: u64,
    },
    /// Remove a file. Exit status 1 if there is no such file.
    Delete {
        /// The file.
        name: OsString,
    },
}

/// Where a write's or cas's content comes from: exactly one of the three.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Content {
    /// The content, given on the command line.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub value: Option<OsString>,
    /// The content of this file, byte for byte.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// `-`: the content is all of stdin, byte for byte.
    #[arg(
        value_name = "-",
        value_parser = clap::builder::PossibleValuesParser::new(["-"]),
        hide_possible_values = true
    )]
    pub stdin: Option<String>,
}

/// Most content a write or cas reads from a file or stdin. Far above any sensible store
/// maximum (`--max-file-size`, 1 MiB by default; the store refuses what is over its own): this
/// only keeps `--file /dev/zero`, or a huge file given by mistake, from filling memory.
pub const CONTENT_BYTES_MAX: u64 = 1 << 30;

impl Content {
    /// The content's bytes.
    fn bytes(self) -> Result<Bytes, CommandError> {
        if let Some(value) = self.value {
            return Ok(Bytes::copy_from_slice(value.as_bytes()));
        }
        match self.file {
            Some(path) => {
                let what = path.display().to_string();
                let file = std::fs::File::open(&path).map_err(|source| CommandError::Input {
                    what: what.clone(),
                    source,
                })?;
                read_bounded(file, what)
            }
            None => read_bounded(std::io::stdin().lock(), "stdin".into()),
        }
    }
}

/// All of `input`, unless it holds more than [`CONTENT_BYTES_MAX`] bytes.
fn read_bounded(input: impl Read, what: String) -> Result<Bytes, CommandError> {
    let mut content = Vec::new();
    let read = input.take(CONTENT_BYTES_MAX + 1).read_to_end(&mut content);
    if let Err(source) = read {
        return Err(CommandError::Input { what, source });
    }
    if content.len() as u64 > CONTENT_BYTES_MAX {
        let source = std::io::Error::other(format!("more than {CONTENT_BYTES_MAX} bytes"));
        return Err(CommandError::Input { what, source });
    }
    Ok(Bytes::from(content))
}

/// Runs one command and prints its result: content or a version on stdout, and with
/// `read --verbose` the version and expiry on stderr.
pub fn run(mut session: Session, command: OneShot) -> Result<(), CommandError> {
    // Content is read before connecting: a missing --file is a bad argument, not something to
    // find out after the cluster was asked.
    let (command, verbose) = match command {
        OneShot::Read { name, verbose } => (
            Command::Read {
                name: name_of(&name)?,
            },
            verbose,
        ),
        OneShot::Write {
            name,
            content,
            exptime,
        } => {
            let name = name_of(&name)?;
            let write = Command::Write {
                name,
                content: content.bytes()?,
                exptime_s: exptime,
            };
            (write, false)
        }
        OneShot::Cas {
            name,
            version,
            content,
            exptime,
        } => {
            let name = name_of(&name)?;
            let cas = Command::Cas {
                name,
                version,
                content: content.bytes()?,
                exptime_s: exptime,
            };
            (cas, false)
        }
        OneShot::Delete { name } => (
            Command::Delete {
                name: name_of(&name)?,
            },
            false,
        ),
    };
    let mut stdout = std::io::stdout().lock();
    match session.call(&command)? {
        Reply::Contents {
            version,
            exptime_s,
            content,
        } => {
            stdout.write_all(&content).map_err(CommandError::Output)?;
            if verbose {
                eprintln!("{}", describe(version, content.len(), exptime_s));
            }
        }
        Reply::Written { version } => {
            writeln!(stdout, "{version}").map_err(CommandError::Output)?;
        }
        // A delete's `OK` carries nothing to print; the exit status says it.
        _ => {}
    }
    stdout.flush().map_err(CommandError::Output)
}

/// A file name from the command line, checked against the protocol's rule.
fn name_of(arg: &OsString) -> Result<Name, CommandError> {
    Ok(Name::new(Bytes::copy_from_slice(arg.as_bytes()))?)
}

/// A read's facts besides the content: `version 3, 6 bytes, expires in 12 s`.
pub fn describe(version: u64, bytes: usize, exptime_s: u64) -> String {
    let size = if bytes == 1 {
        "1 byte".to_owned()
    } else {
        format!("{bytes} bytes")
    };
    let expiry = match exptime_s {
        0 => "never expires".to_owned(),
        s => format!("expires in {s} s"),
    };
    format!("version {version}, {size}, {expiry}")
}
