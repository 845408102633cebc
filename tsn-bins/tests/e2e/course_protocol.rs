//! A client that speaks only the course's protocol (SPEC.md section 3): the generated
//! stubs, no session, none of TSN's fields. It must get the course's replies, word for
//! word, and the gRPC statuses SPEC.md names for what is malformed or misrouted.

use tonic::Code;

use crate::support::{CourseTimeline, Deployment, get_server, request, runtime, sns_at, within};

/// The `Reply.msg` of a Login, Follow or UnFollow that must succeed at the gRPC level.
macro_rules! reply {
    ($call:expr) => {
        within(stringify!($call), $call)
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e}", stringify!($call)))
            .into_inner()
            .msg
    };
}

/// The gRPC code of a call that must fail.
macro_rules! refusal {
    ($call:expr) => {
        match within(stringify!($call), $call).await {
            Ok(answer) => panic!("{} was answered: {:?}", stringify!($call), answer),
            Err(status) => {
                assert!(
                    !status.message().is_empty(),
                    "{} is refused with a readable message",
                    stringify!($call)
                );
                status
            }
        }
    };
}

#[test]
fn course_client_gets_the_course_replies_for_login_list_follow_and_unfollow() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let coordinator_port = deployment.coordinator_port;

    runtime().block_on(async {
        let info = get_server(coordinator_port, 1)
            .await
            .expect("GetServer names cluster 1's master");
        assert_eq!(
            (info.hostname.as_str(), info.port.as_str()),
            ("127.0.0.1", master_port.to_string().as_str()),
            "GetServer(1) names the master: {info:?}"
        );
        let mut sns = sns_at(info.port.parse().expect("a port number")).await;

        assert_eq!(reply!(sns.login(request("1", &[]))), "Login Successful!");
        assert_eq!(reply!(sns.login(request("1", &[]))), "Welcome Back 1");
        assert_eq!(reply!(sns.login(request("4", &[]))), "Login Successful!");

        let listing = within("List", sns.list(request("1", &[])))
            .await
            .expect("List")
            .into_inner();
        let mut all_users = listing.all_users.clone();
        all_users.sort();
        assert_eq!(all_users, ["1", "4"], "{listing:?}");
        assert!(listing.followers.is_empty(), "{listing:?}");

        assert_eq!(
            reply!(sns.follow(request("1", &["4"]))),
            "Follow Successful"
        );
        assert_eq!(
            reply!(sns.follow(request("1", &["4"]))),
            "you have already joined",
            "following someone already followed"
        );
        assert_eq!(
            reply!(sns.follow(request("1", &["1"]))),
            "you have already joined",
            "following oneself"
        );
        assert_eq!(
            reply!(sns.follow(request("1", &["7"]))),
            "unknown follower username",
            "following a user who never logged in"
        );
        let listing = within("List", sns.list(request("4", &[])))
            .await
            .expect("List")
            .into_inner();
        assert_eq!(listing.followers, ["1"], "{listing:?}");

        assert_eq!(
            reply!(sns.un_follow(request("1", &["4"]))),
            "UnFollow Successful"
        );
        assert_eq!(
            reply!(sns.un_follow(request("1", &["4"]))),
            "You are not a follower",
            "unfollowing someone not followed"
        );
        assert_eq!(
            reply!(sns.un_follow(request("1", &["7"]))),
            "Unknown follower",
            "unfollowing a user who never logged in"
        );
        assert_eq!(
            reply!(sns.un_follow(request("1", &["1"]))),
            "Unknown follower",
            "unfollowing oneself"
        );
        let listing = within("List", sns.list(request("4", &[])))
            .await
            .expect("List")
            .into_inner();
        assert!(listing.followers.is_empty(), "{listing:?}");
    });
    assert!(deployment.server(1, 1).is_running());
}

#[test]
fn course_clients_exchange_posts_over_timeline_streams_without_acks() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);

    runtime().block_on(async {
        let mut sns = sns_at(master_port).await;
        for user in ["1", "4"] {
            assert_eq!(reply!(sns.login(request(user, &[]))), "Login Successful!");
        }
        assert_eq!(
            reply!(sns.follow(request("1", &["4"]))),
            "Follow Successful"
        );
        assert_eq!(
            reply!(sns.follow(request("4", &["1"]))),
            "Follow Successful"
        );

        let mut reader = CourseTimeline::open(&mut sns, "1").await;
        let mut writer = CourseTimeline::open(&mut sns, "4").await;
        // The course's client sends each line with its newline; the post is the line.
        writer.post("hello from 4\n").await;
        writer.post("a second post, \"quoted\"").await;

        for text in ["hello from 4", "a second post, \"quoted\""] {
            let post = reader.next_post().await;
            assert_eq!((post.username.as_str(), post.msg.as_str()), ("4", text));
            let stamp = post.timestamp.expect("a post carries its timestamp");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs() as i64;
            assert!(
                (now - 60..=now + 60).contains(&stamp.seconds),
                "the timestamp is the time of posting: {stamp:?}"
            );
            assert_eq!(
                (post.acked, post.error.as_str()),
                (0, ""),
                "no TSN fields for a course client"
            );
        }

        // Both posts are stored by now. Had the server acknowledged them to their author,
        // the acknowledgements would come on 4's stream before this post of 1.
        reader.post("an answer from 1").await;
        let first = writer.next_post().await;
        assert_eq!(
            (first.username.as_str(), first.msg.as_str(), first.acked),
            ("1", "an answer from 1", 0),
            "the first message a course client gets is a post, not an acknowledgement"
        );
    });
    assert!(deployment.server(1, 1).is_running());
}

#[test]
fn course_client_gets_the_spec_statuses_for_malformed_and_misrouted_requests() {
    let mut deployment = Deployment::start(3);
    let master_port = deployment.start_master(1);
    let coordinator_port = deployment.coordinator_port;

    runtime().block_on(async {
        let mut sns = sns_at(master_port).await;
        assert_eq!(reply!(sns.login(request("1", &[]))), "Login Successful!");

        // A target that is no user id is an unknown user, as the course's server says it:
        // the course's client then prints `Command failed with invalid username`.
        assert_eq!(
            reply!(sns.follow(request("1", &["abc"]))),
            "unknown follower username"
        );
        assert_eq!(
            reply!(sns.un_follow(request("1", &["four"]))),
            "Unknown follower"
        );
        for bad in [
            refusal!(sns.follow(request("1", &[]))),
            refusal!(sns.un_follow(request("1", &[]))),
            refusal!(sns.login(request("abc", &[]))),
            refusal!(sns.login(request("", &[]))),
            refusal!(sns.list(request("x1", &[]))),
        ] {
            assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        }

        // User 2 lives in cluster 2 of 3.
        let misrouted = refusal!(sns.login(request("2", &[])));
        assert_eq!(misrouted.code(), Code::FailedPrecondition, "{misrouted:?}");
        assert!(
            misrouted.message().contains("cluster 2"),
            "the refusal names the right cluster: {misrouted:?}"
        );

        let no_server = get_server(coordinator_port, 2)
            .await
            .expect_err("cluster 2 has no server");
        assert_eq!(no_server.code(), Code::Unavailable, "{no_server:?}");
        let no_user = get_server(coordinator_port, 0)
            .await
            .expect_err("0 is no user id");
        assert_eq!(no_user.code(), Code::InvalidArgument, "{no_user:?}");

        // None of it harmed the server.
        assert_eq!(reply!(sns.login(request("1", &[]))), "Welcome Back 1");
    });
    assert!(deployment.server(1, 1).is_running());
}
