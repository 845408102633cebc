//! The client on a real terminal (SPEC.md section 4): a pseudo-terminal the test opens,
//! as a person's terminal emulator would. Every line typed or pasted is handled, in order,
//! exactly as through a pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::support::{Deployment, PROMPT, binary, eventually, timeline_lines};

/// `tsc` running on a pseudo-terminal: what it shows, and keys sent to it.
struct Terminal {
    child: Child,
    keys: File,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    /// Starts `tsc args` on a new 100×30 pseudo-terminal.
    fn tsc(args: &[&str]) -> Terminal {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 30,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two new descriptors into the integers given.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the terminal"));
        let child = Command::new(binary("tsc"))
            .args(args)
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave))
            .env("TERM", "xterm")
            .env_remove("RUST_LOG")
            .spawn()
            .expect("start tsc");
        drop(slave);
        let keys = File::from(master);
        let mut reader = keys.try_clone().expect("dup the terminal");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let shown = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            child,
            keys,
            screen,
        }
    }

    /// Everything written to the terminal so far, escape sequences included.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Sends `bytes` in one write, as a fast typist, a paste or `tmux send-keys` would.
    fn keys(&mut self, bytes: &[u8]) {
        self.keys.write_all(bytes).expect("type on the terminal");
    }

    /// Waits until the terminal has shown `text` `count` times.
    fn wait_for_count(&self, text: &str, count: usize) {
        eventually(
            &format!(
                "the terminal to show {count} x {text:?}; it shows:\n{}",
                self.screen()
            ),
            || (self.screen().matches(text).count() >= count).then_some(()),
        );
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn lines_typed_or_pasted_at_once_on_a_terminal_are_each_handled_in_order() {
    let mut deployment = Deployment::start(1);
    deployment.start_master(1);
    let coordinator = deployment.coordinator_port.to_string();
    let mut u1 = Terminal::tsc(&["-k", &coordinator, "-u", "1"]);
    u1.wait_for_count(PROMPT, 1);
    let mut u2 = deployment.logged_in_client(2);
    u2.command("FOLLOW 1", "Command completed successfully");
    u2.enter_timeline();

    // Three commands in one burst: each runs, in order.
    u1.keys(b"LIST\rBLAH1\rBLAH2\r");
    u1.wait_for_count("Invalid Command", 2);
    let screen = u1.screen();
    let listed = screen.find("All users: 1, 2").expect("LIST ran");
    assert!(
        listed < screen.find("Invalid Command").expect("shown"),
        "LIST ran first:\n{screen}"
    );

    // Posts in one burst, then a bracketed paste of two lines and Enter.
    u1.keys(b"TIMELINE\r");
    u1.wait_for_count("Now you are in the timeline", 1);
    u1.keys(b"A\rB\rC\r");
    u1.keys(b"\x1b[200~D\nE\x1b[201~\r");
    u2.wait_for("1 (");
    eventually("u2 to see the five posts", || {
        (timeline_lines(&u2.stdout()).len() >= 5).then_some(())
    });
    u2.finish();
    let seen: Vec<String> = timeline_lines(&u2.stdout())
        .iter()
        .map(|line| line.replace("1 (TIME) >> ", ""))
        .collect();
    assert_eq!(seen, ["A", "B", "C", "D", "E"], "u2 saw:\n{}", u2.stdout());
}
