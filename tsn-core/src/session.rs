//! Live sessions: at most one client per user at a time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::id::UserId;

/// The secret a client picks when it starts and presents at every login, so that it can
/// resume its own session after a failover.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionToken(pub String);

/// The outcome of a login attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Admitted: no live session held the user (or the client named no session).
    Admitted,
    /// Admitted: the client resumed its own session.
    Resumed,
    /// Refused: another client holds a live session for the user.
    Refused,
}

/// Which client holds each user, and until when. A session lives while its client keeps
/// it alive within the timeout; it ends at logout or when the timeout passes in silence.
#[derive(Clone, Debug)]
pub struct Sessions {
    timeout: Duration,
    live: HashMap<UserId, (SessionToken, Instant)>,
}

impl Sessions {
    /// No sessions; a session dies after `timeout` without a keep-alive.
    pub fn new(timeout: Duration) -> Self {
        Sessions {
            timeout,
            live: HashMap::new(),
        }
    }

    /// A login by `user` presenting `token` (`None` for the course's clients, which
    /// have no sessions and are always admitted).
    pub fn login(&mut self, user: UserId, token: Option<&SessionToken>, now: Instant) -> Admission {
        let Some(token) = token else {
            return Admission::Admitted;
        };
        match self.live.get(&user) {
            Some((holder, _)) if holder == token => {
                self.live.insert(user, (token.clone(), now));
                Admission::Resumed
            }
            Some((_, seen)) if now.duration_since(*seen) < self.timeout => Admission::Refused,
            _ => {
                self.live.insert(user, (token.clone(), now));
                Admission::Admitted
            }
        }
    }

    /// Keeps `user`'s session alive; false if `token` does not hold it (the client should
    /// log in again).
    pub fn keep_alive(&mut self, user: UserId, token: &SessionToken, now: Instant) -> bool {
        match self.live.get_mut(&user) {
            Some((holder, seen)) if holder == token && now.duration_since(*seen) < self.timeout => {
                *seen = now;
                true
            }
            _ => false,
        }
    }

    /// Ends `user`'s session if `token` holds it.
    pub fn logout(&mut self, user: UserId, token: &SessionToken) {
        if self
            .live
            .get(&user)
            .is_some_and(|(holder, _)| holder == token)
        {
            self.live.remove(&user);
        }
    }

    /// Forgets sessions silent for longer than the timeout.
    pub fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        self.live
            .retain(|_, (_, seen)| now.duration_since(*seen) < timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(3);

    fn user() -> UserId {
        UserId::new(1).unwrap()
    }

    fn token(s: &str) -> SessionToken {
        SessionToken(s.into())
    }

    #[test]
    fn a_second_client_is_refused_while_the_first_lives() {
        let t = Instant::now();
        let mut s = Sessions::new(TIMEOUT);
        assert_eq!(s.login(user(), Some(&token("a")), t), Admission::Admitted);
        assert_eq!(s.login(user(), Some(&token("b")), t), Admission::Refused);
        assert!(s.keep_alive(user(), &token("a"), t + TIMEOUT / 2));
        assert_eq!(
            s.login(user(), Some(&token("b")), t + TIMEOUT),
            Admission::Refused
        );
        assert_eq!(
            s.login(user(), Some(&token("a")), t + TIMEOUT),
            Admission::Resumed
        );
    }

    #[test]
    fn a_vanished_or_departed_client_frees_the_user() {
        let t = Instant::now();
        let mut s = Sessions::new(TIMEOUT);
        s.login(user(), Some(&token("a")), t);
        assert_eq!(
            s.login(user(), Some(&token("b")), t + TIMEOUT),
            Admission::Admitted
        );
        assert!(
            !s.keep_alive(user(), &token("a"), t + TIMEOUT),
            "a lost its session"
        );
        s.logout(user(), &token("a"));
        assert_eq!(
            s.login(user(), Some(&token("c")), t + TIMEOUT),
            Admission::Refused,
            "a cannot log b out"
        );
        s.logout(user(), &token("b"));
        assert_eq!(
            s.login(user(), Some(&token("c")), t + TIMEOUT),
            Admission::Admitted
        );
    }

    #[test]
    fn course_clients_have_no_sessions() {
        let t = Instant::now();
        let mut s = Sessions::new(TIMEOUT);
        s.login(user(), Some(&token("a")), t);
        assert_eq!(s.login(user(), None, t), Admission::Admitted);
        s.expire(t + TIMEOUT);
        assert!(!s.keep_alive(user(), &token("a"), t + TIMEOUT));
    }
}
