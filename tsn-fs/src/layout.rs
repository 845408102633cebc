//! What the course view holds, derived from the log: which files there are, what each
//! entry changes in them, and each file's whole content. No I/O here; [`crate::view`]
//! writes.
//!
//! The view's list files keep the order things happened in, as the course's programs
//! append them: `all_users.txt` in the order users became known, a following or followers
//! file in the order the follows that hold now began. The state keeps its lists sorted, so
//! [`Layout`] keeps these orders itself, rebuilt from the log like the state.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use tsn_core::Result;
use tsn_core::change::{Change, Entry};
use tsn_core::id::{Membership, UserId};
use tsn_core::post::Post;
use tsn_core::state::{Delivery, State};

use tsn_core::course::post_record;

/// The name of the file listing every known user.
pub(crate) const ALL_USERS: &str = "all_users.txt";

/// At most how many records (posts, users) [`Layout::render_tail`] takes at a time: a file
/// far behind is brought up to date in parts, each taken under the store's lock in about a
/// millisecond, not in one take that holds everything else up.
pub(crate) const TAIL_RECORDS: usize = 4096;

/// One file of the course view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ViewFile {
    /// `all_users.txt`.
    AllUsers,
    /// `<id>_following.txt`.
    Following(UserId),
    /// `<id>_followers.txt`.
    Followers(UserId),
    /// `<id>.txt`: the user's own posts.
    Posts(UserId),
    /// `<id>_timeline.txt`.
    Timeline(UserId),
}

impl ViewFile {
    /// The four files of a local user.
    fn of_user(user: UserId) -> [ViewFile; 4] {
        [
            ViewFile::Following(user),
            ViewFile::Followers(user),
            ViewFile::Posts(user),
            ViewFile::Timeline(user),
        ]
    }

    /// The file's name in the replica folder.
    pub(crate) fn name(self) -> String {
        match self {
            ViewFile::AllUsers => ALL_USERS.to_owned(),
            ViewFile::Following(u) => format!("{u}_following.txt"),
            ViewFile::Followers(u) => format!("{u}_followers.txt"),
            ViewFile::Posts(u) => format!("{u}.txt"),
            ViewFile::Timeline(u) => format!("{u}_timeline.txt"),
        }
    }

    /// The view file called `name`, if it is one.
    pub(crate) fn parse(name: &str) -> Option<ViewFile> {
        if name == ALL_USERS {
            return Some(ViewFile::AllUsers);
        }
        let stem = name.strip_suffix(".txt")?;
        let (id, kind): (&str, fn(UserId) -> ViewFile) =
            if let Some(id) = stem.strip_suffix("_following") {
                (id, ViewFile::Following)
            } else if let Some(id) = stem.strip_suffix("_followers") {
                (id, ViewFile::Followers)
            } else if let Some(id) = stem.strip_suffix("_timeline") {
                (id, ViewFile::Timeline)
            } else {
                (stem, ViewFile::Posts)
            };
        id.parse().ok().map(kind)
    }
}

/// A change to one or more view files, computed when an entry is appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Append `text` to `file`, creating it if missing (an empty text only creates it).
    Append {
        /// Which file.
        file: ViewFile,
        /// What to append.
        text: String,
    },
    /// Append the record of `post` to each of `files`.
    Post {
        /// Which files.
        files: Vec<ViewFile>,
        /// The post.
        post: Post,
    },
    /// Replace the content of `file` with `text`.
    Rewrite {
        /// Which file.
        file: ViewFile,
        /// Its new content.
        text: String,
    },
}

impl Edit {
    /// The files the edit changes.
    pub(crate) fn files(&self) -> &[ViewFile] {
        match self {
            Edit::Append { file, .. } | Edit::Rewrite { file, .. } => std::slice::from_ref(file),
            Edit::Post { files, .. } => files,
        }
    }

    /// About how many bytes of memory the edit takes until it is written, counting a post's
    /// record once per file (as the writer holds it, grouped by file).
    pub(crate) fn cost(&self) -> usize {
        /// The edit itself, beside its text.
        const EDIT: usize = 64;
        /// A post record's lines beside the text (`T`, `U` and `W` with their values).
        const RECORD: usize = 40;
        match self {
            Edit::Append { text, .. } | Edit::Rewrite { text, .. } => EDIT + text.len(),
            Edit::Post { files, post } => {
                EDIT + files.len() * (RECORD + post.text.as_str().len() + size_of::<ViewFile>())
            }
        }
    }
}

/// Where [`Layout::apply`] puts edits: nowhere during a replay, where the view is
/// rebuilt whole afterwards.
struct Sink<'a>(Option<&'a mut Vec<Edit>>);

impl Sink<'_> {
    fn push(&mut self, edit: impl FnOnce() -> Edit) {
        if let Some(edits) = &mut self.0 {
            edits.push(edit());
        }
    }
}

/// The lists of the course view, in the order things happened.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    membership: Membership,
    /// Every known user, in the order it became known.
    joined: Vec<UserId>,
    /// The local users any entry named: each has its four files.
    local: BTreeSet<UserId>,
    /// Per local user, whom it follows, in the order those follows began (who follows a
    /// user in that order, the state keeps: [`State::followers_in_order`]).
    following: HashMap<UserId, Vec<UserId>>,
}

impl Layout {
    /// The layout of an empty log.
    pub(crate) fn new(membership: Membership) -> Self {
        Layout {
            membership,
            joined: Vec::new(),
            local: BTreeSet::new(),
            following: HashMap::new(),
        }
    }

    /// Applies `entry` to `state` (which must accept it: see
    /// [`State::check_follows`]) and records what it changes in the view; `edits`, when
    /// given, receives the file edits that bring the view files along.
    pub(crate) fn apply(
        &mut self,
        state: &mut State,
        entry: &Entry,
        edits: Option<&mut Vec<Edit>>,
    ) -> Result<Vec<Delivery>> {
        let mut sink = Sink(edits);
        match &entry.change {
            Change::UserJoined { user, .. } => {
                let fresh = !state.has_user(*user);
                let deliveries = state.apply(entry)?;
                self.name(*user, &mut sink);
                if fresh {
                    self.joined.push(*user);
                    sink.push(|| Edit::Append {
                        file: ViewFile::AllUsers,
                        text: format!("{user}\n"),
                    });
                }
                Ok(deliveries)
            }
            Change::Followed {
                follower, followee, ..
            } => {
                let (follower, followee) = (*follower, *followee);
                let fresh = !state.is_following(follower, followee);
                let deliveries = state.apply(entry)?;
                self.name(follower, &mut sink);
                self.name(followee, &mut sink);
                if fresh {
                    if self.membership.is_local(follower) {
                        self.following.entry(follower).or_default().push(followee);
                        sink.push(|| Edit::Append {
                            file: ViewFile::Following(follower),
                            text: format!("{followee}\n"),
                        });
                    }
                    if self.membership.is_local(followee) {
                        sink.push(|| Edit::Append {
                            file: ViewFile::Followers(followee),
                            text: format!("{follower}\n"),
                        });
                    }
                }
                Ok(deliveries)
            }
            Change::Unfollowed {
                follower, followee, ..
            } => {
                let (follower, followee) = (*follower, *followee);
                let held = state.is_following(follower, followee);
                let deliveries = state.apply(entry)?;
                self.name(follower, &mut sink);
                self.name(followee, &mut sink);
                if held {
                    if let Some(list) = self.following.get_mut(&follower) {
                        list.retain(|&u| u != followee);
                        sink.push(|| Edit::Rewrite {
                            file: ViewFile::Following(follower),
                            text: lines(list),
                        });
                    }
                    if self.membership.is_local(followee) {
                        sink.push(|| Edit::Rewrite {
                            file: ViewFile::Followers(followee),
                            text: lines(&state.followers_in_order(followee).collect::<Vec<_>>()),
                        });
                    }
                }
                Ok(deliveries)
            }
            Change::Posted(post) => {
                let fresh = !state.has_post(post);
                let deliveries = state.apply(entry)?;
                // Its readers follow the author: the entries of those follows named them.
                self.name(post.author, &mut sink);
                if fresh {
                    let mut files = Vec::with_capacity(deliveries.len() + 1);
                    if self.membership.is_local(post.author) {
                        files.push(ViewFile::Posts(post.author));
                    }
                    files.extend(deliveries.iter().map(|d| ViewFile::Timeline(d.user)));
                    if !files.is_empty() {
                        sink.push(|| Edit::Post {
                            files,
                            post: post.clone(),
                        });
                    }
                }
                Ok(deliveries)
            }
            Change::MasterElected { .. } | Change::Imported { .. } => state.apply(entry),
        }
    }

    /// Notes that an entry named `user`: a local user gets its four files.
    fn name(&mut self, user: UserId, sink: &mut Sink<'_>) {
        if self.membership.is_local(user) && self.local.insert(user) {
            for file in ViewFile::of_user(user) {
                sink.push(|| Edit::Append {
                    file,
                    text: String::new(),
                });
            }
        }
    }

    /// Every file of the view.
    pub(crate) fn files(&self) -> impl Iterator<Item = ViewFile> + '_ {
        std::iter::once(ViewFile::AllUsers)
            .chain(self.local.iter().flat_map(|&user| ViewFile::of_user(user)))
    }

    /// Whether `file` is part of the view.
    pub(crate) fn has(&self, file: ViewFile) -> bool {
        match file {
            ViewFile::AllUsers => true,
            ViewFile::Following(u)
            | ViewFile::Followers(u)
            | ViewFile::Posts(u)
            | ViewFile::Timeline(u) => self.local.contains(&u),
        }
    }

    /// What `file`, holding `have`, lacks for `state` (the state this layout was built
    /// with), as [`Text`] to format (outside the store's lock). For a posts file, a
    /// timeline and `all_users.txt`, which only grow, this takes only what follows the
    /// records (or lines) the file holds — after checking, when its content is given, that
    /// its last one is the one the state has there — so it costs what the file lacks, not
    /// what it holds. A following or followers list (short, and rewritten by unfollows)
    /// is rendered whole: compared with the content given, or replaced when only a count
    /// is. A tail of more than [`TAIL_RECORDS`] records comes in parts.
    pub(crate) fn render_tail(&self, file: ViewFile, state: &State, have: Have<'_>) -> Tail {
        let count = match have {
            Have::Bytes(content) => content.units(),
            Have::Count(n) => usize::try_from(n).ok(),
        };
        // Whether the state has a record (or line) where the file's last one is, and, when
        // its content is given, it is that one, whole.
        let checked = |last: Option<String>| match have {
            Have::Bytes(content) => last.is_some_and(|last| {
                let bytes = content.bytes();
                let before = bytes.len().checked_sub(last.len());
                bytes.ends_with(last.as_bytes())
                    && before.is_some_and(|at| at == 0 || bytes[at - 1] == b'\n')
            }),
            Have::Count(_) => last.is_some(),
        };
        // At most TAIL_RECORDS records, and whether more follow them.
        let bounded = |records: &mut dyn Iterator<Item = Post>| {
            let mut taken: Vec<Post> = records.take(TAIL_RECORDS + 1).collect();
            let more = taken.len() > TAIL_RECORDS;
            taken.truncate(TAIL_RECORDS);
            (Text::Posts(taken), more)
        };
        let tail = match file {
            ViewFile::AllUsers => count.filter(|&n| n <= self.joined.len()).and_then(|n| {
                let last = match n.checked_sub(1) {
                    Some(i) => Some(format!("{}\n", self.joined[i])),
                    None => Some(String::new()),
                };
                let end = self.joined.len().min(n + TAIL_RECORDS);
                checked(last).then(|| {
                    (
                        Text::Users(self.joined[n..end].to_vec()),
                        end < self.joined.len(),
                    )
                })
            }),
            ViewFile::Following(_) | ViewFile::Followers(_) => {
                let text = self.render(file, state);
                return match have {
                    Have::Bytes(have) if text.as_bytes() == have.bytes() => Tail::Same,
                    Have::Bytes(have) if text.as_bytes().starts_with(have.bytes()) => {
                        Tail::Append(Text::Done(text[have.bytes().len()..].to_owned()))
                    }
                    _ => Tail::Replace(Text::Done(text)),
                };
            }
            ViewFile::Posts(user) => count.and_then(|n| {
                let last = match n.checked_sub(1) {
                    Some(i) => state
                        .posts_by_after(user, i)
                        .next()
                        .map(|post| post_record(&post)),
                    None => Some(String::new()),
                };
                checked(last).then(|| bounded(&mut state.posts_by_after(user, n)))
            }),
            ViewFile::Timeline(user) => count.and_then(|n| {
                let last = match n {
                    0 => Some(String::new()),
                    n => state
                        .timeline_item(user, n as u64)
                        .map(|item| post_record(&item.post)),
                };
                checked(last).then(|| {
                    bounded(
                        &mut state
                            .timeline_after(user, n as u64, state.last().position)
                            .map(|item| item.post),
                    )
                })
            }),
        };
        match tail {
            Some((tail, _)) if tail.is_empty() => Tail::Same,
            Some((tail, false)) => Tail::Append(tail),
            Some((part, true)) => Tail::Part(part),
            None => Tail::Replace(self.material(file, state)),
        }
    }

    /// The whole content of `file`, for `state` (the state this layout was built with), as
    /// [`Text`] to format.
    pub(crate) fn material(&self, file: ViewFile, state: &State) -> Text {
        match file {
            ViewFile::AllUsers => Text::Users(self.joined.clone()),
            ViewFile::Following(user) => {
                Text::Users(self.following.get(&user).cloned().unwrap_or_default())
            }
            ViewFile::Followers(user) => Text::Users(state.followers_in_order(user).collect()),
            ViewFile::Posts(user) => Text::Posts(state.posts_by(user).collect()),
            ViewFile::Timeline(user) => Text::Posts(
                state
                    .timeline_after(user, 0, state.last().position)
                    .map(|item| item.post)
                    .collect(),
            ),
        }
    }

    /// The whole content of `file`, for `state` (the state this layout was built with).
    pub(crate) fn render(&self, file: ViewFile, state: &State) -> String {
        self.material(file, state).format()
    }
}

/// What a view file lacks, given what it holds ([`Layout::render_tail`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// It holds what it should.
    Same,
    /// It holds a beginning of what it should: this is the rest.
    Append(Text),
    /// It holds a beginning of what it should: this is the next part of the rest (its
    /// first [`TAIL_RECORDS`] records), and more follows.
    Part(Text),
    /// It holds something else: this is its whole content.
    Replace(Text),
}

impl Tail {
    /// About how many bytes the text takes once formatted.
    pub(crate) fn size(&self) -> usize {
        match self {
            Tail::Same => 0,
            Tail::Append(text) | Tail::Part(text) | Tail::Replace(text) => text.size(),
        }
    }
}

/// Part of a view file's content, taken from the state (under the store's lock) to be
/// formatted later (outside it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Text {
    /// Post records.
    Posts(Vec<Post>),
    /// User ids, one a line.
    Users(Vec<UserId>),
    /// Formatted already.
    Done(String),
}

impl Text {
    fn is_empty(&self) -> bool {
        match self {
            Text::Posts(posts) => posts.is_empty(),
            Text::Users(users) => users.is_empty(),
            Text::Done(text) => text.is_empty(),
        }
    }

    /// About how many bytes the text takes once formatted.
    pub(crate) fn size(&self) -> usize {
        match self {
            Text::Posts(posts) => posts.iter().map(|p| 40 + p.text.as_str().len()).sum(),
            Text::Users(users) => users.len() * 8,
            Text::Done(text) => text.len(),
        }
    }

    /// The text, formatted.
    pub(crate) fn format(self) -> String {
        match self {
            Text::Posts(posts) => posts.iter().map(post_record).collect(),
            Text::Users(users) => lines(&users),
            Text::Done(text) => text,
        }
    }
}

/// What a view file holds, for [`Layout::render_tail`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Have<'a> {
    /// This content.
    Bytes(&'a Content),
    /// This many records (a posts file, a timeline) or lines (`all_users.txt`), as they
    /// should be: written by the writer, which counted them ([`units`]).
    Count(u64),
}

/// A view file's content as read, its records (or lines) counted when read: outside the
/// store's lock, for a file of tens of MB takes tens of milliseconds to count.
#[derive(Debug)]
pub(crate) struct Content {
    bytes: Vec<u8>,
    units: Option<usize>,
}

impl Content {
    /// `bytes`, read from `file`.
    pub(crate) fn new(file: ViewFile, bytes: Vec<u8>) -> Self {
        let units = units(file, &bytes);
        Content { bytes, units }
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many records or lines they hold ([`units`]).
    pub(crate) fn units(&self) -> Option<usize> {
        self.units
    }
}

/// How many records (a posts file, a timeline) or lines (`all_users.txt`) `text` holds, if
/// it holds nothing else; `None` for a following or followers list, which is not counted.
pub(crate) fn units(file: ViewFile, text: &[u8]) -> Option<usize> {
    match file {
        ViewFile::Posts(_) | ViewFile::Timeline(_) => records(text),
        ViewFile::AllUsers => (text.is_empty() || text.ends_with(b"\n"))
            .then(|| text.iter().filter(|&&b| b == b'\n').count()),
        ViewFile::Following(_) | ViewFile::Followers(_) => None,
    }
}

/// The number of whole post records `text` holds, if it holds nothing else: each record is
/// four lines, the last one empty (a text is escaped to one line).
fn records(text: &[u8]) -> Option<usize> {
    if text.is_empty() {
        return Some(0);
    }
    let lines = text.iter().filter(|&&b| b == b'\n').count();
    (text.ends_with(b"\n\n") && lines % 4 == 0).then_some(lines / 4)
}

/// User ids, one a line.
fn lines(users: &[UserId]) -> String {
    let mut text = String::with_capacity(users.len() * 8);
    for user in users {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{user}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_file_names_parse_back() {
        let u = UserId::new(42).expect("a user");
        for file in [
            ViewFile::AllUsers,
            ViewFile::Following(u),
            ViewFile::Followers(u),
            ViewFile::Posts(u),
            ViewFile::Timeline(u),
        ] {
            assert_eq!(ViewFile::parse(&file.name()), Some(file));
        }
        for other in [
            "changes.log",
            "0.txt",
            "x_following.txt",
            "_timeline.txt",
            "4.txt.tmp",
            "4_blocked.txt",
        ] {
            assert_eq!(ViewFile::parse(other), None, "{other}");
        }
    }
}
