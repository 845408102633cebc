//! Bad input (SPEC.md section 9): wrong commands typed into `tsc`, and hostile messages in
//! a course client's Timeline stream. Each gets a clear answer, nothing bad is stored, and
//! every process keeps running.

use tonic::Code;

use crate::support::{
    CourseTimeline, Deployment, Sns, eventually, greeting, request, runtime, sns_at, tricky_post,
    within, without_times,
};

#[test]
fn tsc_answers_bad_commands_with_the_spec_lines_and_carries_on() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let mut u4 = deployment.logged_in_client(4);
    let mut u1 = deployment.logged_in_client(1);

    for line in [
        "",
        "   ",
        "FOLLOW",
        "UNFOLLOW",
        "FOLLOW 1 4",
        "LIST all",
        "FOLLOW 0",
        "FOLLOW -3",
        "FOLLOW abc",
        "FOLLOW 2147483648",
        "FOLLOW 7",
        "UNFOLLOW 1",
        "UNFOLLOW 4",
        "POST hello",
    ] {
        u1.send(line);
    }
    u1.send_bytes(b"FOLLOW \xff\xfe4\n");
    for line in ["follow 4", "Follow 4", "unfollow 4", "fOlLoW 4", "list"] {
        u1.send(line);
    }
    u1.finish();
    u4.finish();

    let expected = format!(
        "{}\
Cmd> Invalid Command
Cmd> Invalid Command
Cmd> Invalid Input -- No Arguments Given
Cmd> Invalid Input -- No Arguments Given
Cmd> Command failed with invalid command
Cmd> Command failed with invalid command
Cmd> Command failed with invalid username
Cmd> Command failed with invalid username
Cmd> Command failed with invalid username
Cmd> Command failed with invalid username
Cmd> Command failed with invalid username
Cmd> Command failed with invalid username
Cmd> Command failed with not a follower
Cmd> Invalid Command
Cmd> Command failed with invalid username
Cmd> Command completed successfully
Cmd> Input username already exists, command failed
Cmd> Command completed successfully
Cmd> Command completed successfully
Cmd> Command completed successfully
All users: 1, 4
Followers: 
Cmd> 
",
        greeting(master_port)
    );
    assert_eq!(without_times(&u1.stdout()), expected);
    assert!(
        !u1.stderr().contains("panicked"),
        "no panic: {}",
        u1.stderr()
    );
    assert!(deployment.server(1, 1).is_running());
}

/// Logs in users 1, 4 and 7 at the master on `port` with the course's protocol, and makes
/// 1 follow 4 and 7.
async fn course_users(port: u16) -> Sns {
    let mut sns = sns_at(port).await;
    for user in ["1", "4", "7"] {
        within("Login", sns.login(request(user, &[])))
            .await
            .expect("Login");
    }
    for followee in ["4", "7"] {
        let reply = within("Follow", sns.follow(request("1", &[followee])))
            .await
            .expect("Follow")
            .into_inner();
        assert_eq!(reply.msg, "Follow Successful");
    }
    sns
}

/// Sends `text` as `claimed_user` on `stream` and expects the server to end the stream with
/// `INVALID_ARGUMENT`.
async fn refused(stream: &mut CourseTimeline, claimed_user: &str, text: &str) {
    stream.send_as(claimed_user, text).await;
    match stream.next().await {
        Err(status) => assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "a bad message ends the stream with INVALID_ARGUMENT: {status:?}"
        ),
        Ok(answer) => panic!("a bad message was answered: {answer:?}"),
    }
}

/// The posts `user`'s Timeline shows on entering it: opens a stream, has user 4 post
/// `sentinel` after it, and returns the texts shown before and including the sentinel.
async fn view_on_entering(sns: &mut Sns, user: &str, sentinel: &str) -> Vec<(String, String)> {
    let mut reader = CourseTimeline::open(sns, user).await;
    let writer = CourseTimeline::open(sns, "4").await;
    writer.post(sentinel).await;
    let mut shown = Vec::new();
    loop {
        let post = reader.next_post().await;
        shown.push((post.username, post.msg.clone()));
        if post.msg == sentinel {
            return shown;
        }
    }
}

#[test]
fn a_stream_message_that_claims_another_user_is_refused_and_not_stored() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);

    runtime().block_on(async {
        let mut sns = course_users(master_port).await;
        let mut reader = CourseTimeline::open(&mut sns, "1").await;

        let mut forger = CourseTimeline::open(&mut sns, "4").await;
        refused(&mut forger, "7", "forged: 7 never wrote this").await;
        let mut forger = CourseTimeline::open(&mut sns, "4").await;
        forger.post("a real post from 4").await;
        refused(&mut forger, "1", "forged: 1 never wrote this").await;

        let post = reader.next_post().await;
        assert_eq!(
            (post.username.as_str(), post.msg.as_str()),
            ("4", "a real post from 4"),
            "the follower sees the real post and nothing forged"
        );
        assert_eq!(
            view_on_entering(&mut sns, "1", "the last post").await,
            [
                ("4".to_owned(), "a real post from 4".to_owned()),
                ("4".to_owned(), "the last post".to_owned())
            ]
        );
    });
    assert!(deployment.server(1, 1).is_running());

    let replica = deployment.data_dir().join("cluster_1").join("1");
    let timeline = eventually("1's timeline file to hold the last post", || {
        let text = std::fs::read_to_string(replica.join("1_timeline.txt")).ok()?;
        text.contains("the last post").then_some(text)
    });
    assert!(!timeline.contains("forged"), "{timeline}");
    for file in ["1.txt", "4.txt", "7.txt"] {
        let text = std::fs::read_to_string(replica.join(file)).unwrap_or_default();
        assert!(!text.contains("forged"), "{file}: {text}");
    }
}

#[test]
fn stream_posts_over_the_limit_or_with_control_characters_are_refused_and_any_other_text_is_kept() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let longest = tricky_post(1000);
    let too_long = tricky_post(1001);
    assert_eq!(
        (longest.chars().count(), too_long.chars().count()),
        (1000, 1001)
    );

    runtime().block_on(async {
        let mut sns = course_users(master_port).await;
        let mut reader = CourseTimeline::open(&mut sns, "1").await;

        let mut writer = CourseTimeline::open(&mut sns, "4").await;
        refused(&mut writer, "4", &too_long).await;
        let mut writer = CourseTimeline::open(&mut sns, "4").await;
        writer.post(&longest).await;
        refused(&mut writer, "4", "\u{1b}[31mred alert\u{1b}[0m").await;
        let mut writer = CourseTimeline::open(&mut sns, "4").await;
        refused(&mut writer, "4", "a NUL \0 inside").await;

        let post = reader.next_post().await;
        assert_eq!(post.username, "4");
        assert!(
            post.msg == longest,
            "the post of 1,000 characters comes back byte for byte:\nsent: {longest:?}\ngot:  {:?}",
            post.msg
        );
        assert_eq!(
            view_on_entering(&mut sns, "1", "the last post").await,
            [
                ("4".to_owned(), longest.clone()),
                ("4".to_owned(), "the last post".to_owned())
            ],
            "only the good post is stored"
        );
    });
    assert!(deployment.server(1, 1).is_running());
}
