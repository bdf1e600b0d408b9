//! Queue figures on the simulator: a busy simulated hour on two queues, with agents
//! answering, letting calls ring out, taking breaks and wrapping up, and callers who give
//! up. Every few minutes the queue board's figures must equal the switch's own counts.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opencti_core::queue::{QueueBoard, QueueFigures, QueueStats};
use opencti_core::{
    AgentId, DesktopInterface, DesktopInterfaceExt, DeviceId, Event, QueueId, ReasonCode, Session,
};
use opencti_sim::{QueueCounts, SimSwitch};

const QUEUES: [&str; 2] = ["sales", "support"];
const SERVICE_LEVEL: Duration = Duration::from_secs(20);

/// A small deterministic generator, so that the hour is the same every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn centre() -> SimSwitch {
    let mut builder = SimSwitch::builder();
    for queue in QUEUES {
        builder = builder
            .queue(queue)
            .ring_timeout(queue, Duration::from_secs(12))
            .wrap_up(queue, Duration::from_secs(25))
            .service_level(queue, SERVICE_LEVEL);
    }
    for n in 0..10 {
        let skills: &[&str] = match n % 3 {
            0 => &["sales"],
            1 => &["support"],
            _ => &["sales", "support"],
        };
        builder = builder.agent(&format!("agent{}", n), &format!("{}", 2000 + n), skills);
    }
    builder.build().unwrap()
}

/// An agent who answers most calls after a few seconds, lets some ring out, and goes
/// back to ready a minute after the switch made them not ready for it.
fn agent_at_work(session: Session, seed: u64) {
    tokio::spawn(async move {
        let mut dice = Dice(seed);
        let mut events = session.subscribe();
        while let Some(Ok(envelope)) = events.next().await {
            match &envelope.event {
                Event::CallOffered { call, .. } => {
                    if dice.next(8) == 0 {
                        continue; // rings out
                    }
                    let session = session.clone();
                    let call = call.clone();
                    let after = Duration::from_secs(1 + dice.next(6));
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = session.answer(call).await;
                    });
                }
                Event::AgentStateChanged { state } if state.name() == "not_ready" => {
                    let session = session.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        let _ = session.ready().await;
                    });
                }
                _ => {}
            }
        }
    });
}

fn assert_same(minute: u64, queue: &str, board: &QueueFigures, switch: &QueueCounts) {
    let at = format!("minute {}, queue {}", minute, queue);
    assert_eq!(board.offered, switch.offered, "offered, {}", at);
    assert_eq!(board.answered, switch.answered, "answered, {}", at);
    assert_eq!(board.abandoned, switch.abandoned, "abandoned, {}", at);
    assert_eq!(u64::from(board.waiting), switch.waiting, "waiting, {}", at);
    assert_eq!(u64::from(board.ringing), switch.ringing, "ringing, {}", at);
    assert_eq!(
        board.answered_within, switch.answered_within,
        "answered in time, {}",
        at
    );
    assert_eq!((board.overflowed, board.left_unseen), (0, 0), "{}", at);
    assert_eq!(board.agents, switch.agents, "agents by state, {}", at);
    let mean = |sum: Duration, n: u64| (n > 0).then(|| (sum / n as u32).as_millis() as u64);
    assert_eq!(
        board.average_speed_of_answer_ms,
        mean(switch.wait_sum, switch.answered),
        "average speed of answer, {}",
        at
    );
    assert_eq!(board.completed, switch.completed, "completed, {}", at);
    assert_eq!(
        board.average_handle_ms,
        mean(switch.handle_sum, switch.completed),
        "average handle time, {}",
        at
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_hour_on_the_board_matches_the_switch_own_counts() {
    let switch = centre();
    let start = switch.now();
    let mut stats = QueueStats::new(start);
    for queue in QUEUES {
        stats = stats.with_queue(QueueId::new(queue).unwrap(), SERVICE_LEVEL);
    }
    let board = QueueBoard::new(stats, start);
    board.feed_stamped(switch.queue_events());

    let mut sessions = Vec::new();
    for n in 0..10u64 {
        let device = DeviceId::new(format!("{}", 2000 + n)).unwrap();
        let session = Session::builder(
            Arc::new(switch.connector(device.clone())),
            AgentId::new(format!("agent{}", n)).unwrap(),
            device,
        )
        .start()
        .await
        .unwrap();
        board.follow(session.clone());
        session.login().await.unwrap();
        session.ready().await.unwrap();
        agent_at_work(session.clone(), 100 + n);
        sessions.push(session);
    }
    let (_, mut followed) = board.snapshot_and_subscribe();

    let control = switch.control();
    let mut dice = Dice(7);
    let mut checks = 0;
    let mut caller = 0u64;
    for minute in 0..60u64 {
        // About 5 callers a minute over the two queues (a little more than ten agents
        // handle), each patient for 10-100 s and talking 30-150 s once answered.
        for _ in 0..(4 + dice.next(3)) {
            let queue = QUEUES[dice.next(2) as usize];
            caller += 1;
            control
                .customer_calls(queue, &format!("+4416329{:05}", caller))
                .patience(Duration::from_secs(10 + dice.next(90)))
                .talk_for(Duration::from_secs(30 + dice.next(120)))
                .call()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2000 + dice.next(16000))).await;
        }
        // A break for one agent a quarter of an hour in, for ten minutes.
        if minute == 15 {
            sessions[3]
                .not_ready(Some(ReasonCode::new("lunch").unwrap()))
                .await
                .unwrap();
        }
        if minute % 5 == 4 {
            // Everything due at this instant has run once the runtime is idle again.
            tokio::time::sleep(Duration::from_micros(1)).await;
            for queue in QUEUES {
                let id = QueueId::new(queue).unwrap();
                let figures = board
                    .snapshot()
                    .queues
                    .into_iter()
                    .find(|f| f.queue == id)
                    .unwrap();
                assert_same(minute, queue, &figures, &switch.queue_counts(&id).unwrap());
            }
            checks += 1;
        }
    }
    assert_eq!(checks, 12);

    let sales = switch
        .queue_counts(&QueueId::new("sales").unwrap())
        .unwrap();
    let support = switch
        .queue_counts(&QueueId::new("support").unwrap())
        .unwrap();
    println!("sales: {:?}\nsupport: {:?}", sales, support);
    // The hour was busy enough to exercise every count.
    for counts in [&sales, &support] {
        assert!(counts.offered > 100, "{:?}", counts);
        assert!(counts.abandoned > 5, "{:?}", counts);
        assert!(counts.answered > 80, "{:?}", counts);
        assert!(counts.answered_within < counts.answered, "{:?}", counts);
    }
    // Followers saw a gap-free stream.
    let mut last = None;
    while let Ok(Some(Ok(envelope))) =
        tokio::time::timeout(Duration::from_millis(1), followed.next()).await
    {
        if let Some(last) = last {
            assert_eq!(envelope.seq, last + 1);
        }
        last = Some(envelope.seq);
    }
    assert!(last.unwrap_or(0) > 1000);
}
