//! The `raftfs client` shell: one command a line, answered on stdout. On a terminal it edits
//! lines with rustyline and keeps a history in `$HOME/.raftfs_history`; otherwise it reads
//! stdin line by line without a prompt (so a script can pipe commands into it) and exits at the
//! end of input with the worst exit status of its commands.

use std::io::{BufRead, IsTerminal, Read, Write};

use bytes::Bytes;
use fs::{Command, Name, Reply};
use rustyline::error::ReadlineError;

use super::words::{self, is_plain_text, quoted};
use super::{CommandError, Session};

/// What `raftfs client --help` says about the shell and the exit status.
pub const SHELL_HELP_FOOTER: &str = "\
Without a subcommand, raftfs client is a shell (type `help` in it): read NAME, write NAME VALUE
[EXPTIME], cas NAME VERSION VALUE [EXPTIME], delete NAME, members, quit. When stdin is not a
terminal it reads commands line by line, without a prompt, and exits at the end of input.

Exit status: 0 on success, 1 for ERR_FILE_NOT_FOUND or ERR_VERSION, 2 for anything else (no
member reachable, ERR_CMD_ERR, an unknown outcome, a bad argument), with the reason on stderr.
The shell prints replies and errors on stdout, in order; reading stdin, it exits with the
worst status of its commands.";

/// The shell's `help`.
pub const HELP: &str = r#"Commands (one a line; they go to the leader, redirects are followed):
  read NAME                          show a file's content, then its version, size and expiry
  write NAME VALUE [EXPTIME]         create or replace a file; EXPTIME in seconds, 0 = never
  cas NAME VERSION VALUE [EXPTIME]   replace a file only if its version is VERSION
  delete NAME                        remove a file
  members                            list the cluster's members
  help                               this text
  quit, exit (or Ctrl-D)             leave
Quote a VALUE that holds spaces: "hello world" or 'hello world'. Inside "...", the escapes
\n \r \t \0 \\ \" and \xHH stand for bytes (binary content); '...' is taken literally.
Content that is not plain text is shown in that quoted form.
Replies: OK VERSION (write, cas), OK (delete), ERR_FILE_NOT_FOUND, ERR_VERSION CURRENT,
ERR_CMD_ERR (e.g. content over the store's maximum file size).
"#;

/// Longest line the shell reads from a pipe. A line carries at most one VALUE, which the store
/// bounds by its maximum file size (1 MiB by default, `--max-file-size`), and an escaped byte
/// takes up to 4 characters (`\xff`): 64 MiB leaves room for a 16 MiB file written out in
/// escapes, and keeps a binary file piped in by mistake from being held whole in memory.
const LINE_BYTES_MAX: usize = 64 << 20;

/// History lines kept in `$HOME/.raftfs_history`.
const HISTORY_ENTRIES_MAX: usize = 1000;

/// One parsed shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A protocol command.
    Run(Command),
    /// `members`: list the configuration.
    Members,
    /// `help`.
    Help,
    /// `quit` or `exit`.
    Quit,
}

/// What the shell does after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Go on; the line's exit status (0, 1 or 2).
    Next(i32),
    /// Leave.
    Quit,
}

/// Runs the shell until `quit` or the end of input; returns the exit status.
pub fn run(session: Session) -> i32 {
    if std::io::stdin().is_terminal() {
        interactive(session)
    } else {
        piped(session)
    }
}

/// Reads commands from a pipe or file: no prompt, no echo, exit status the worst of them.
fn piped(mut session: Session) -> i32 {
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    run_lines(&mut session, stdin, stdout)
}

/// Runs each line of `input`, answering on `out`, until `quit` or the end; returns the worst
/// exit status.
fn run_lines(session: &mut Session, mut input: impl BufRead, mut out: impl Write) -> i32 {
    let mut worst = 0;
    let mut line = Vec::new();
    // One byte beyond the longest line tells a line that fits from one that does not.
    let limit = u64::try_from(LINE_BYTES_MAX + 1).unwrap_or(u64::MAX);
    loop {
        line.clear();
        match (&mut input).take(limit).read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) if line.len() > LINE_BYTES_MAX && !line.ends_with(b"\n") => {
                // Report it once and skip the rest of it, up to the next line.
                let skipped = skip_line(&mut input);
                let said = writeln!(
                    out,
                    "error: line longer than {LINE_BYTES_MAX} bytes, not run"
                );
                if let Err(err) = skipped.and(said) {
                    eprintln!("raftfs client: {err}");
                    return 2;
                }
                worst = 2;
                continue;
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("raftfs client: cannot read stdin: {err}");
                return 2;
            }
        }
        // Lines may end in \r\n (a file from another system) as well as \n.
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match execute(session, text, &mut out) {
            Ok(Step::Next(code)) => worst = worst.max(code),
            Ok(Step::Quit) => break,
            Err(err) => {
                eprintln!("raftfs client: cannot write to stdout: {err}");
                return 2;
            }
        }
    }
    worst
}

/// Reads and drops input up to and including the next newline (or the end).
fn skip_line(input: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(at) => {
                input.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    }
}

/// The interactive shell: a prompt naming the member it talks to, line editing, history.
fn interactive(mut session: Session) -> i32 {
    let mut editor = match editor() {
        Ok(editor) => editor,
        Err(err) => {
            eprintln!("raftfs client: cannot start the line editor: {err}");
            return 2;
        }
    };
    let history =
        std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".raftfs_history"));
    if let Some(path) = &history {
        // No history yet (or an unreadable one) is no reason not to start.
        let _ = editor.load_history(path);
    }
    println!("raftfs client: `help` lists the commands, `quit` or Ctrl-D leaves.");
    loop {
        let prompt = match session.connected_to() {
            Some(addr) => format!("raftfs {addr}> "),
            None => "raftfs> ".to_owned(),
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let mut stdout = std::io::stdout().lock();
                match execute(&mut session, line.as_bytes(), &mut stdout) {
                    Ok(Step::Next(_)) => {}
                    Ok(Step::Quit) => break,
                    Err(err) => {
                        eprintln!("raftfs client: cannot write to stdout: {err}");
                        break;
                    }
                }
            }
            // Ctrl-C abandons the line being typed, as in a Unix shell.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(err) => {
                eprintln!("raftfs client: cannot read the terminal: {err}");
                break;
            }
        }
    }
    if let Some(path) = &history {
        // A history that cannot be saved (read-only home) loses nothing the user asked for.
        let _ = editor.save_history(path);
    }
    0
}

/// A line editor keeping [`HISTORY_ENTRIES_MAX`] lines, each non-blank line added by us.
fn editor() -> rustyline::Result<rustyline::DefaultEditor> {
    let config = rustyline::Config::builder()
        .max_history_size(HISTORY_ENTRIES_MAX)?
        .auto_add_history(false)
        .build();
    rustyline::DefaultEditor::with_config(config)
}

/// Parses and runs one line, printing its reply (or why it failed) on `out`.
fn execute(session: &mut Session, line: &[u8], out: &mut dyn Write) -> std::io::Result<Step> {
    let result = match parse(line) {
        Ok(None) => return Ok(Step::Next(0)),
        Ok(Some(Line::Quit)) => return Ok(Step::Quit),
        Ok(Some(Line::Help)) => {
            out.write_all(HELP.as_bytes())?;
            Ok(())
        }
        Ok(Some(Line::Members)) => session
            .members()
            .map(|members| crate::admin::table(&members))
            .and_then(|table| writeln!(out, "{table}").map_err(CommandError::Output)),
        Ok(Some(Line::Run(command))) => session
            .call(&command)
            .and_then(|reply| show(&reply, out).map_err(CommandError::Output)),
        Err(err) => Err(err),
    };
    let code = match result {
        Ok(()) => 0,
        Err(CommandError::Output(err)) => return Err(err),
        Err(err) if err.is_reply() => {
            writeln!(out, "{}", super::one_line(&err))?;
            err.exit_code()
        }
        Err(err) => {
            writeln!(out, "error: {}", super::one_line(&err))?;
            err.exit_code()
        }
    };
    out.flush()?;
    Ok(Step::Next(code))
}

/// Prints a successful reply: `OK 3`, `OK`, or content and then
/// `(version 3, 6 bytes, expires in 12 s)`.
fn show(reply: &Reply, out: &mut dyn Write) -> std::io::Result<()> {
    match reply {
        Reply::Contents {
            version,
            exptime_s,
            content,
        } => {
            if is_plain_text(content) {
                out.write_all(content)?;
                if !content.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            } else {
                writeln!(out, "{}", quoted(content))?;
            }
            let facts = super::oneshot::describe(*version, content.len(), *exptime_s);
            writeln!(out, "({facts})")
        }
        Reply::Written { version } => writeln!(out, "OK {version}"),
        Reply::Deleted => writeln!(out, "OK"),
        other => {
            let wire = other.to_bytes();
            writeln!(out, "{}", String::from_utf8_lossy(&wire).trim_end())
        }
    }
}

/// Parses a shell line: `None` for a blank line or a `#` comment.
pub fn parse(line: &[u8]) -> Result<Option<Line>, CommandError> {
    let words = words::split(line).map_err(|err| CommandError::Usage(err.to_string()))?;
    let Some((verb, args)) = words.split_first() else {
        return Ok(None);
    };
    if verb.starts_with(b"#") {
        return Ok(None);
    }
    let usage = |form: &str| CommandError::Usage(format!("usage: {form}"));
    let line = match (&verb[..], args) {
        (b"read", [name]) => Line::Run(Command::Read {
            name: name_of(name)?,
        }),
        (b"read", _) => return Err(usage("read NAME")),
        (b"write", [name, value, rest @ ..]) if rest.len() <= 1 => Line::Run(Command::Write {
            name: name_of(name)?,
            content: Bytes::copy_from_slice(value),
            exptime_s: rest.first().map_or(Ok(0), |word| exptime(word))?,
        }),
        (b"write", _) => {
            return Err(usage(
                "write NAME VALUE [EXPTIME] (quote a VALUE with spaces)",
            ));
        }
        (b"cas", [name, version, value, rest @ ..]) if rest.len() <= 1 => Line::Run(Command::Cas {
            name: name_of(name)?,
            version: number(version, "VERSION")?,
            content: Bytes::copy_from_slice(value),
            exptime_s: rest.first().map_or(Ok(0), |word| exptime(word))?,
        }),
        (b"cas", _) => {
            return Err(usage(
                "cas NAME VERSION VALUE [EXPTIME] (quote a VALUE with spaces)",
            ));
        }
        (b"delete", [name]) => Line::Run(Command::Delete {
            name: name_of(name)?,
        }),
        (b"delete", _) => return Err(usage("delete NAME")),
        (b"members", []) => Line::Members,
        (b"help" | b"?", _) => Line::Help,
        (b"quit" | b"exit", []) => Line::Quit,
        (b"members" | b"quit" | b"exit", _) => {
            return Err(CommandError::Usage(format!(
                "{} takes no arguments",
                String::from_utf8_lossy(verb)
            )));
        }
        _ => {
            return Err(CommandError::Usage(format!(
                "unknown command {} (`help` lists them)",
                quoted(verb)
            )));
        }
    };
    Ok(Some(line))
}

/// A file name word, checked against the protocol's rule.
fn name_of(word: &[u8]) -> Result<Name, CommandError> {
    Ok(Name::new(Bytes::copy_from_slice(word))?)
}

/// The EXPTIME word after a VALUE. Not a number most likely means an unquoted VALUE with a
/// space (`write f hello world`), so the error says how to quote.
fn exptime(word: &[u8]) -> Result<u64, CommandError> {
    number(word, "EXPTIME").map_err(|err| {
        CommandError::Usage(format!(
            "{err} (quote a VALUE with spaces: \"hello world\")"
        ))
    })
}

/// An unsigned number word.
fn number(word: &[u8], what: &str) -> Result<u64, CommandError> {
    std::str::from_utf8(word)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            CommandError::Usage(format!(
                "{what} must be an unsigned number, not {}",
                quoted(word)
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn name(s: &str) -> Name {
        Name::new(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn usage(line: &str) -> String {
        match parse(line.as_bytes()) {
            Err(CommandError::Usage(text)) => text,
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_every_command() {
        let parsed = |line: &str| parse(line.as_bytes()).unwrap().unwrap();
        assert_eq!(
            parsed("read foo"),
            Line::Run(Command::Read { name: name("foo") })
        );
        assert_eq!(
            parsed(r#"write foo "a b\r\n" 30"#),
            Line::Run(Command::Write {
                name: name("foo"),
                content: Bytes::from_static(b"a b\r\n"),
                exptime_s: 30,
            })
        );
        assert_eq!(
            parsed("write foo bar"),
            Line::Run(Command::Write {
                name: name("foo"),
                content: Bytes::from_static(b"bar"),
                exptime_s: 0,
            })
        );
        assert_eq!(
            parsed("cas foo 7 ''"),
            Line::Run(Command::Cas {
                name: name("foo"),
                version: 7,
                content: Bytes::new(),
                exptime_s: 0,
            })
        );
        assert_eq!(
            parsed("delete foo"),
            Line::Run(Command::Delete { name: name("foo") })
        );
        assert_eq!(parsed("members"), Line::Members);
        assert_eq!(parsed("help"), Line::Help);
        assert_eq!(parsed("quit"), Line::Quit);
        assert_eq!(parsed("  exit "), Line::Quit);
    }

    #[test]
    fn a_line_over_the_limit_is_skipped_whole() {
        // No command here reaches a member, so the session never connects.
        let target = super::super::Target {
            members: vec!["127.0.0.1:1".into()],
            ca: None,
            timeout: std::time::Duration::from_secs(1),
        };
        let mut session = Session::new(target).unwrap();
        let mut input = vec![b'#'; LINE_BYTES_MAX];
        input.extend_from_slice(b"\n"); // Exactly the longest line: a comment, fine.
        input.extend(std::iter::repeat_n(b'x', LINE_BYTES_MAX + 10));
        input.extend_from_slice(b"\nhelp\nquit\nread never\n");
        let mut out = Vec::new();
        assert_eq!(run_lines(&mut session, &input[..], &mut out), 2);
        // The long line reported once, the help, and nothing after quit.
        let expected = format!("error: line longer than {LINE_BYTES_MAX} bytes, not run\n{HELP}");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn blank_lines_and_comments_do_nothing() {
        for line in ["", "   ", "# a comment", "#"] {
            assert_eq!(parse(line.as_bytes()).unwrap(), None, "{line:?}");
        }
    }

    #[test]
    fn malformed_lines_say_what_is_expected() {
        assert!(usage("read").contains("read NAME"));
        assert!(usage("read a b").contains("read NAME"));
        assert!(usage("write foo hello world").contains("quote a VALUE"));
        assert!(usage("write foo").contains("write NAME VALUE"));
        assert!(usage("write foo bar soon").contains("EXPTIME must be"));
        assert!(usage("cas foo latest bar").contains("VERSION must be"));
        assert!(usage("cas foo 1").contains("cas NAME VERSION VALUE"));
        assert!(usage("delete").contains("delete NAME"));
        assert!(usage("members now").contains("no arguments"));
        assert!(usage("frobnicate x").contains("unknown command"));
        assert!(usage("write 'foo bar").contains("unterminated"));
        assert!(matches!(
            parse(b"read \"a\\x01\""),
            Err(CommandError::Name(_))
        ));
    }
}
