//! Scenario files: the shipped ones load and play; broken ones name file, line and fix.

use std::path::PathBuf;
use std::time::Duration;

use opencti_sim::scenario::Scenario;

fn shipped() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{:?}", files);
    files
}

#[test]
fn every_shipped_scenario_loads() {
    for path in shipped() {
        let scenario =
            Scenario::from_path(&path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e));
        assert!(!scenario.centre.agents.is_empty(), "{}", path.display());
    }
}

fn error_of(text: &str) -> String {
    Scenario::from_toml(text, "scenarios/broken.toml")
        .unwrap_err()
        .message()
        .to_string()
}

const BASE: &str = "[[queue]]\nid = \"support\"\n\n[[agent]]\nid = \"alice\"\ndevice = \"1001\"\nskills = [\"support\"]\n";

#[test]
fn errors_name_the_file_the_line_and_what_was_expected() {
    let unknown_queue = BASE.replace("skills = [\"support\"]", "skills = [\"sales\"]");
    assert_eq!(
        error_of(&unknown_queue),
        "scenarios/broken.toml:7: unknown queue `sales`, expected one of the queues defined: support"
    );
    let negative = format!(
        "{}\n[[arrivals]]\nqueue = \"support\"\ncalls_per_hour = -5\ntalk = 60\n",
        BASE
    );
    assert_eq!(
        error_of(&negative),
        "scenarios/broken.toml:11: calls_per_hour must be a positive number, not -5"
    );
    let unknown_field = BASE.replace("device = \"1001\"", "device = \"1001\"\nshift = \"early\"");
    let message = error_of(&unknown_field);
    assert!(
        message.starts_with("scenarios/broken.toml:7: unknown field `shift`, expected one of"),
        "{}",
        message
    );
    let unknown_target = format!(
        "{}\n[[call]]\nat = 1\nto = \"9999\"\nfrom = \"+441632960001\"\n",
        BASE
    );
    assert_eq!(
        error_of(&unknown_target),
        "scenarios/broken.toml:11: `9999` is not a queue, a queue number or an agent's device; expected one of: support, 1001"
    );
    let bad_id = BASE.replace("id = \"alice\"", "id = \"al ice\"");
    assert!(
        error_of(&bad_id).starts_with("scenarios/broken.toml:5: agent id \"al ice\" is not valid")
    );
    let negative_time = format!(
        "{}\n[[call]]\nat = -1\nto = \"support\"\nfrom = \"+441632960001\"\n",
        BASE
    );
    assert_eq!(
        error_of(&negative_time),
        "scenarios/broken.toml:10: at must be zero or more seconds, not -1"
    );
    let syntax = "[[queue]\nid = 1";
    assert!(
        error_of(syntax).starts_with("scenarios/broken.toml:1: "),
        "{}",
        error_of(syntax)
    );
    let missing = Scenario::from_path("scenarios/does-not-exist.toml").unwrap_err();
    assert!(missing
        .message()
        .starts_with("scenarios/does-not-exist.toml: cannot read"));
}

async fn play_hour(seed: u64) -> opencti_sim::SwitchStats {
    let mut scenario = Scenario::from_path(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/support-desk.toml"),
    )
    .unwrap();
    scenario.seed = seed;
    let switch = scenario.switch().unwrap();
    let done = scenario.play(&switch);
    done.await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    switch.stats()
}

#[tokio::test(start_paused = true)]
async fn playing_is_reproducible_from_the_seed() {
    let first = play_hour(1).await;
    let again = play_hour(1).await;
    let other = play_hour(2).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    // Nobody logs in, so every caller waits and gives up: about 60 in an hour.
    assert!((35..=90).contains(&first.queued), "{:?}", first);
    assert_eq!(first.abandoned, first.queued);
}

#[tokio::test(start_paused = true)]
async fn the_builder_and_the_file_describe_the_same_scenario() {
    let from_file = Scenario::from_toml(
        "name = \"x\"\nseed = 3\n[[queue]]\nid = \"support\"\n[[agent]]\nid = \"alice\"\ndevice = \"1001\"\nskills = [\"support\"]\n[[call]]\nat = 5\nto = \"support\"\nfrom = \"+441632960001\"\n",
        "inline",
    )
    .unwrap();
    let built = Scenario::builder(
        "x",
        opencti_sim::SimSwitch::builder()
            .queue("support")
            .agent("alice", "1001", &["support"]),
    )
    .seed(3)
    .call_at(Duration::from_secs(5), "support", "+441632960001")
    .build()
    .unwrap();
    assert_eq!(from_file, built);
}
