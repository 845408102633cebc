//! What a timeline holds (SPEC.md sections 4 and 5), seen on the screens of `tsc` clients:
//! the 20 newest posts first, newest first; only posts made while following; none of one's
//! own; any text of up to 1,000 characters exactly as written, and nothing longer, with
//! control characters or not text at all.
//!
//! A view is sent in one go when a client enters its timeline, before any new post; so once
//! a post made after the entry is on the screen, the whole view is too, and what is not on
//! the screen by then is not in the view.

use crate::support::{Deployment, request, runtime, sns_at, timeline_lines, tricky_post, within};

/// `n` timeline lines of `author` with `texts`, times masked.
fn lines(author: u32, texts: &[&str]) -> Vec<String> {
    texts
        .iter()
        .map(|text| format!("{author} (TIME) >> {text}"))
        .collect()
}

#[test]
fn entering_the_timeline_shows_the_20_newest_posts_newest_first() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u4 = deployment.logged_in_client(4);
    u1.command("FOLLOW 4", "Command completed successfully");

    u4.enter_timeline();
    for n in 1..=25 {
        u4.send(&format!("post {n:02}"));
    }
    // At the end of input the client waits until every post is acknowledged.
    u4.finish();

    u1.enter_timeline();
    let mut u4 = deployment.logged_in_client(4);
    u4.enter_timeline();
    u4.send("post 26, after 1 entered");
    u1.wait_for("post 26, after 1 entered\n");
    u4.finish();
    u1.finish();

    let newest: Vec<String> = (6..=25).rev().map(|n| format!("post {n:02}")).collect();
    let mut expected: Vec<&str> = newest.iter().map(String::as_str).collect();
    expected.push("post 26, after 1 entered");
    assert_eq!(timeline_lines(&u1.stdout()), lines(4, &expected));
}

#[test]
fn a_timeline_holds_only_posts_made_while_following_and_none_of_ones_own() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    let mut u4 = deployment.logged_in_client(4);
    let mut u7 = deployment.logged_in_client(7);
    let mut u1 = deployment.logged_in_client(1);

    // 7 watches 4 throughout: once 7 sees a post, it is stored.
    u7.command("FOLLOW 4", "Command completed successfully");
    u7.enter_timeline();
    u4.enter_timeline();
    u4.send("A: before 1 follows");
    u7.wait_for("A: before 1 follows\n");

    u1.command("FOLLOW 4", "Command completed successfully");
    u1.command("FOLLOW 7", "Command completed successfully");
    u1.enter_timeline();
    u4.send("B: while 1 follows");
    u1.wait_for("B: while 1 follows\n");
    u1.finish();

    let mut u1 = deployment.logged_in_client(1);
    u1.command("UNFOLLOW 4", "Command completed successfully");
    u4.send("C: after 1 unfollowed");
    u7.wait_for("C: after 1 unfollowed\n");

    u1.enter_timeline();
    u7.send("Z: from 7");
    u1.wait_for("Z: from 7\n");
    u4.send("D: the last post");
    u7.wait_for("D: the last post\n");

    u1.finish();
    u4.finish();
    u7.finish();
    assert_eq!(
        timeline_lines(&u1.stdout()),
        [lines(4, &["B: while 1 follows"]), lines(7, &["Z: from 7"])].concat(),
        "after the unfollow, 1 keeps B, gets neither A (before the follow) nor C (after)"
    );
    assert_eq!(
        timeline_lines(&u7.stdout()),
        lines(
            4,
            &[
                "A: before 1 follows",
                "B: while 1 follows",
                "C: after 1 unfollowed",
                "D: the last post"
            ]
        ),
        "7's own post is not in 7's timeline"
    );
    assert_eq!(
        timeline_lines(&u4.stdout()),
        Vec::<String>::new(),
        "4 follows nobody"
    );
}

#[test]
fn an_unfollow_stops_delivery_to_an_open_timeline() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let mut u4 = deployment.logged_in_client(4);
    let mut u7 = deployment.logged_in_client(7);
    let mut u1 = deployment.logged_in_client(1);
    u7.command("FOLLOW 4", "Command completed successfully");
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.command("FOLLOW 7", "Command completed successfully");
    for client in [&mut u1, &mut u4, &mut u7] {
        client.enter_timeline();
    }
    u4.send("while 1 follows");
    u1.wait_for("while 1 follows\n");

    // tsc cannot leave its timeline: 1 unfollows through the course's protocol, which has
    // no session and so does not disturb the tsc client.
    runtime().block_on(async {
        let mut sns = sns_at(master_port).await;
        let reply = within("UnFollow", sns.un_follow(request("1", &["4"])))
            .await
            .expect("UnFollow")
            .into_inner();
        assert_eq!(reply.msg, "UnFollow Successful");
    });
    u4.send("after 1 unfollowed");
    u7.wait_for("after 1 unfollowed\n");
    u7.send("from 7, after 4's last post");
    u1.wait_for("from 7, after 4's last post\n");

    for client in [&mut u1, &mut u4, &mut u7] {
        client.finish();
    }
    assert_eq!(
        timeline_lines(&u1.stdout()),
        [
            lines(4, &["while 1 follows"]),
            lines(7, &["from 7, after 4's last post"])
        ]
        .concat()
    );
}

#[test]
fn a_post_of_1000_characters_comes_back_exactly_and_longer_or_control_lines_are_refused() {
    let mut deployment = Deployment::start(3);
    deployment.start_master(1);
    let mut u1 = deployment.logged_in_client(1);
    let mut u4 = deployment.logged_in_client(4);
    u1.command("FOLLOW 4", "Command completed successfully");
    u1.enter_timeline();
    u4.enter_timeline();

    let longest = tricky_post(1000);
    let too_long = tricky_post(1001);
    u4.send(&too_long);
    u4.wait_for_count("Post not sent:", 1);
    u4.send("\u{1b}[31mred alert\u{1b}[0m");
    u4.wait_for_count("Post not sent:", 2);
    u4.send_bytes(b"caf\xe9 in Latin-1\n");
    u4.wait_for_count("Post not sent:", 3);
    u4.send(&longest);
    u4.send("after the long ones");
    u1.wait_for("after the long ones\n");
    u4.finish();
    u1.finish();

    assert_eq!(
        timeline_lines(&u1.stdout()),
        lines(4, &[&longest, "after the long ones"]),
        "the follower sees the post of 1,000 characters byte for byte, and not the longer one"
    );
    let refusals: Vec<String> = timeline_lines(&u4.stdout())
        .into_iter()
        .filter(|line| line.starts_with("Post not sent:"))
        .collect();
    assert_eq!(refusals.len(), 3, "{}", u4.stdout());
    assert!(
        refusals[0].contains("1001") || refusals[0].contains("1000"),
        "the refusal says what is wrong: {}",
        refusals[0]
    );
    assert!(
        refusals[1].contains("control character"),
        "the refusal says what is wrong: {}",
        refusals[1]
    );
    assert!(
        refusals[2].contains("UTF-8"),
        "the refusal says what is wrong: {}",
        refusals[2]
    );
}

/// A protocol client of `user` at the master on `port`.
fn client_at(port: u16, user: u32) -> tsn_grpc::client::SnsClient {
    let endpoint = tsn_core::coordinator::Endpoint {
        host: "127.0.0.1".into(),
        port,
    };
    let user = tsn_core::id::UserId::new(user).expect("a user id");
    tsn_grpc::client::SnsClient::new(endpoint, user, format!("timeline-test-u{user}"))
        .expect("a client")
}

/// Users 1 and 4, logged in at the master on `port`, 1 following 4.
async fn reader_and_author(
    port: u16,
) -> (tsn_grpc::client::SnsClient, tsn_grpc::client::SnsClient) {
    let (u1, u4) = (client_at(port, 1), client_at(port, 4));
    for user in [&u1, &u4] {
        within("a login", user.login()).await.expect("logs in");
    }
    within("a follow", u1.follow("4"))
        .await
        .expect("u1 follows u4");
    (u1, u4)
}

/// The text of post `seq`: `"post 1"`, `"post 2"` ..., padded with `pad` dashes.
fn numbered(seq: u64, pad: usize) -> String {
    format!("post {seq}{}", "-".repeat(pad))
}

/// Has `author` post `count` posts [`numbered`] with `pad` on its timeline stream, and waits
/// for each to be acknowledged.
async fn post_all(author: &tsn_grpc::client::SnsClient, count: u64, pad: usize) {
    use tsn_grpc::client::TimelineEvent;
    let mut stream = within("the author's timeline", author.open_timeline(None))
        .await
        .expect("the author's timeline opens");
    for seq in 1..=count {
        within("a post", stream.post(9, seq, &numbered(seq, pad)))
            .await
            .expect("sent");
    }
    loop {
        match within("the acknowledgements", stream.next()).await {
            Ok(Some(TimelineEvent::Acked { seq, error, .. })) => {
                assert_eq!(error, None, "post {seq} is stored");
                if seq == count {
                    return;
                }
            }
            Ok(Some(_)) => {}
            other => panic!("the stream ended before its last acknowledgement: {other:?}"),
        }
    }
}

/// Reads posts [`numbered`] `first..=last` with `pad` from `reader`, each once, in order.
async fn read_posts(
    reader: &mut tsn_grpc::client::TimelineConn,
    first: u64,
    last: u64,
    pad: usize,
) {
    use tsn_grpc::client::TimelineEvent;
    for expected in first..=last {
        match within("a post", reader.next()).await {
            Ok(Some(TimelineEvent::Post(post))) => {
                assert_eq!(post.index, expected);
                assert_eq!(post.text, numbered(expected, pad));
            }
            other => panic!("post {expected} of {last} did not come: {other:?}"),
        }
    }
}

/// A client that comes back after missing thousands of posts (it asks for what came after
/// the last index it showed, as `tsc` does after a failover) gets every one, once, in
/// order — read from the replica a page at a time, not all under the store's lock at once.
#[test]
fn a_client_that_resumes_after_thousands_of_missed_posts_gets_each_once_in_order() {
    const MISSED: u64 = 2_500;
    let mut deployment = Deployment::start(3);
    let port = deployment.start_master(1);
    runtime().block_on(async {
        let (u1, u4) = reader_and_author(port).await;
        post_all(&u4, MISSED, 0).await;
        let mut reader = within("u1's resumed timeline", u1.open_timeline(Some(0)))
            .await
            .expect("u1's timeline opens");
        read_posts(&mut reader, 1, MISSED, 0).await;
    });
}

/// A reader whose timeline is open but who reads nothing while thousands of posts are
/// committed (more than any buffer between them) does not hold back their author, and
/// then gets every one, once, in order, on the same stream: the server reads them from the
/// replica when the reader can take them, rather than holding them for it, and never
/// ends the stream.
#[test]
fn a_reader_that_stops_reading_gets_every_post_later_on_the_same_stream() {
    // More than the stream's buffers and flow-control windows hold: 10 MB.
    const UNREAD: u64 = 10_000;
    const PAD: usize = 990;
    let mut deployment = Deployment::start(3);
    let port = deployment.start_master(1);
    runtime().block_on(async {
        let (u1, u4) = reader_and_author(port).await;
        let mut reader = within("u1's timeline", u1.open_timeline(None))
            .await
            .expect("u1's timeline opens");
        // Every post is acknowledged while the reader reads nothing.
        post_all(&u4, UNREAD, PAD).await;
        read_posts(&mut reader, 1, UNREAD, PAD).await;
    });
}
