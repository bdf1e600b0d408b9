//! `opencti sim run`: planner figures from the command line.

use std::process::Command;

use serde_json::Value;

fn opencti(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_opencti"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_output_is_one_object_with_the_figures_and_the_event_count() {
    let args = [
        "sim",
        "run",
        "--agents",
        "10",
        "--calls-per-hour",
        "480",
        "--aht",
        "60",
        "--calls",
        "20000",
        "--seed",
        "3",
        "--json",
    ];
    let (ok, stdout, stderr) = opencti(&args);
    assert!(ok, "{}", stderr);
    assert_eq!(stdout.lines().count(), 1);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let calls = &report["overall"]["calls"];
    assert_eq!(calls["offered"], 20000);
    assert_eq!(calls["answered"], 20000, "patient callers all get answered");
    // 8 Erlangs on 10 agents: P(wait) is 0.409 by Erlang C; 20,000 calls land near it.
    let prob_wait = calls["prob_wait"].as_f64().unwrap();
    assert!((0.33..0.49).contains(&prob_wait), "{}", prob_wait);
    assert!(report["events"]["total"].as_u64().unwrap() >= 6 * 20000);
    assert!(report["wall_secs"].as_f64().is_some());
    // The same seed gives the same figures.
    let (_, again, _) = opencti(&args);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["overall"], report["overall"]);
}

#[test]
fn the_human_readable_form_names_the_figures_and_the_formula() {
    let (ok, stdout, stderr) = opencti(&[
        "sim",
        "run",
        "--agents",
        "10",
        "--calls-per-hour",
        "480",
        "--aht",
        "60",
        "--patience",
        "120",
        "--calls",
        "5000",
    ]);
    assert!(ok, "{}", stderr);
    for needle in [
        "offered",
        "abandoned",
        "service level",
        "average speed of answer",
        "probability of waiting",
        "occupancy",
        "Erlang A",
        "canonical events",
    ] {
        assert!(
            stdout.contains(needle),
            "missing {:?} in\n{}",
            needle,
            stdout
        );
    }
}

#[test]
fn a_scenario_file_drives_the_planner() {
    let (ok, stdout, stderr) = opencti(&[
        "sim",
        "run",
        "--scenario",
        "scenarios/sales-and-support.toml",
        "--json",
    ]);
    assert!(ok, "{}", stderr);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let queues: Vec<&str> = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["sales", "support"]);
    assert_eq!(report["agents"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_parameters_get_a_clear_error() {
    let (ok, _, stderr) = opencti(&["sim", "run", "--agents", "0"]);
    assert!(!ok);
    assert!(stderr.contains("opencti: config:"), "{}", stderr);
    let (ok, _, stderr) = opencti(&["sim", "run", "--calls-per-hour=-5"]);
    assert!(!ok);
    assert!(stderr.contains("calls"), "{}", stderr);
    let (ok, _, stderr) = opencti(&["sim", "run", "--scenario", "scenarios/screen-pop.toml"]);
    assert!(!ok);
    assert!(stderr.contains("no [[arrivals]]"), "{}", stderr);
}
