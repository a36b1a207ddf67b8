//! The rotation phases against an in-memory store and fake targets, checking the promises
//! of a rotation at every step: every target always trusts a key of the purpose whose
//! private half the vault holds, keys keyvault does not manage survive, a failure leaves a
//! journal the next run finishes.

use crate::callbacks::FixedPassphrase;
use crate::clock::Clock;
use crate::error::{Error, Result, TargetError};
use crate::inventory::{KeyState, Purpose, Step};
use crate::remote::{self, AddKey};
use crate::rotate::RotateRequest;
use crate::span::Span;
use crate::store::memory::MemoryStore;
use crate::target::{Applied, Hook, Target, TargetSpec, Targets};
use crate::vault::{NewKey, Vault};
use crate::{Passphrase, Report};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// A key no vault manages, present at every target from the start.
const UNMANAGED: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl someone@else";

/// The targets' key lists, and how they misbehave.
#[derive(Default)]
struct World {
    lists: BTreeMap<String, Vec<String>>,
    /// Targets whose writes fail before changing anything.
    failing: BTreeSet<String>,
    /// Targets whose next write is applied but answered with an error.
    losing: BTreeSet<String>,
    /// The pods each RunPod account lists (`None`: the listing fails).
    pods: BTreeMap<String, Option<Vec<crate::runpod::Pod>>>,
}

#[derive(Clone, Default)]
struct Fakes(Arc<Mutex<World>>);

impl Fakes {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn holds(&self, name: &str) -> HashSet<ssh_key::Fingerprint> {
        remote::fingerprints(&remote::parse_list(&self.world().lists[name]))
    }
}

struct FakeTarget {
    spec: TargetSpec,
    fakes: Fakes,
}

impl Target for FakeTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }
    fn list(&mut self) -> Result<Vec<remote::RemoteKey>, TargetError> {
        let name = self.spec.to_string();
        Ok(remote::parse_list(
            self.fakes.world().lists.entry(name).or_default(),
        ))
    }
    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        let unreachable = |reason: &str| TargetError::Unreachable {
            target: name.clone(),
            reason: reason.to_owned(),
        };
        if self.fakes.world().failing.contains(&name) {
            return Err(unreachable("connection refused").into());
        }
        let current = self.list()?;
        hook(&format!("write:{name}"))?;
        let desired = remote::merge(&current, add, remove);
        let present = remote::fingerprints(&remote::parse_list(&desired));
        let mut world = self.fakes.world();
        world.lists.insert(name.clone(), desired);
        if world.losing.remove(&name) {
            return Err(unreachable("connection reset after the write").into());
        }
        drop(world);
        hook(&format!("written:{name}"))?;
        Ok(Applied {
            wrote: true,
            present,
        })
    }
    fn atomic_swap(&self) -> bool {
        matches!(self.spec, TargetSpec::Runpod { .. })
    }
    fn pods(&mut self) -> Result<Option<Vec<crate::runpod::Pod>>, TargetError> {
        match self.fakes.world().pods.get(&self.spec.to_string()) {
            None => Ok(None),
            Some(Some(pods)) => Ok(Some(pods.clone())),
            Some(None) => Err(TargetError::Unreachable {
                target: self.spec.to_string(),
                reason: "timed out".to_owned(),
            }),
        }
    }
}

impl Targets for Fakes {
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        Ok(Box::new(FakeTarget {
            spec: spec.clone(),
            fakes: self.clone(),
        }))
    }
}

/// A clock the test moves.
struct TestClock(Mutex<DateTime<Utc>>);

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

const TARGETS: [&str; 3] = ["runpod", "file:/fake/a", "file:/fake/b"];

/// A vault (files in a temporary home, state in memory) whose purpose `web` has an
/// active key deployed to every one of [`TARGETS`], each of which also holds [`UNMANAGED`].
struct Setup {
    _dir: tempfile::TempDir,
    vault: Vault,
    store: MemoryStore,
    fakes: Fakes,
    clock: Arc<TestClock>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MemoryStore::default();
    let clock = Arc::new(TestClock(Mutex::new(Utc::now())));
    // Unencrypted keys: no KDF to wait for.
    let home = crate::store::memory::home(
        dir.path(),
        "vault",
        "[purpose.web]\npassphrase = \"optional\"\n",
    );
    let vault = Vault::open(&home)
        .expect("open")
        .with_store(Arc::new(store.clone()))
        .with_clock(clock.clone());
    let fakes = Fakes::default();
    for t in TARGETS {
        fakes
            .world()
            .lists
            .insert(t.to_owned(), vec![UNMANAGED.to_owned()]);
    }
    vault
        .create(
            &mut rng(),
            &NewKey::new(web()).unencrypted(true),
            &mut callbacks(),
        )
        .expect("create");
    for t in TARGETS {
        let spec: TargetSpec = t.parse().expect("spec");
        vault
            .deploy(&"web".parse().expect("selector"), &spec, &fakes)
            .expect("deploy");
    }
    Setup {
        _dir: dir,
        vault,
        store,
        fakes,
        clock,
    }
}

fn rng() -> impl ssh_key::rand_core::CryptoRng {
    ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng)
}

fn callbacks() -> FixedPassphrase {
    FixedPassphrase(Passphrase::new("unused".to_owned()))
}

fn web() -> Purpose {
    "web".parse().expect("purpose")
}

fn rotate(s: &Setup, request: &RotateRequest) -> Result<Report> {
    s.vault
        .rotate(&mut rng(), request, &mut callbacks(), &s.fakes)
}

/// The promises that hold at every step, checked against what was saved.
fn check_invariants(store: &MemoryStore, fakes: &Fakes, at: &str) {
    let saved = store.saved();
    let held: HashSet<ssh_key::Fingerprint> = saved
        .state
        .keys()
        .iter()
        .filter(|k| k.purpose() == &web() && k.state() != KeyState::Revoked)
        .map(|k| *k.fingerprint())
        .collect();
    for t in TARGETS {
        let trusted = fakes.holds(t);
        assert!(
            trusted.iter().any(|f| held.contains(f)),
            "at {at}: {t} trusts no live key of web the vault holds"
        );
        assert!(
            fakes.world().lists[t].iter().any(|l| l == UNMANAGED),
            "at {at}: the unmanaged key left {t}"
        );
    }
}

/// The end state of a finished rotation: one active key, at every target with the
/// unmanaged one and nothing else; the old key revoked; no journal.
fn check_finished(s: &Setup) {
    let saved = s.store.saved();
    assert!(saved.state.journal().is_empty(), "journal left behind");
    let active = saved.state.active(&web()).expect("an active key");
    let old = active.rotated_from().expect("rotated from the first key");
    assert_eq!(
        saved.state.get(old).map(|k| k.state()),
        Some(KeyState::Revoked)
    );
    for t in TARGETS {
        assert_eq!(
            s.fakes.world().lists[t],
            vec![UNMANAGED.to_owned(), active.deploy_line()],
            "{t}"
        );
    }
    let link = std::fs::read_link(s.vault.current_path(&web())).expect("current link");
    assert!(link.ends_with(active.id().as_str()));
}

#[test]
fn a_rotation_adds_promotes_and_removes_saving_each_step_and_keeping_unmanaged_keys() {
    let s = setup();
    let points = Arc::new(Mutex::new(Vec::new()));
    let vault = {
        let (store, fakes, points) = (s.store.clone(), s.fakes.clone(), points.clone());
        Vault::open(s.vault.home())
            .expect("open")
            .with_store(Arc::new(s.store.clone()))
            .with_fault_hook(Arc::new(move |point: &str| {
                check_invariants(&store, &fakes, point);
                let saves = store.saved().saves;
                points
                    .lock()
                    .expect("points")
                    .push((point.to_owned(), saves));
                Ok(())
            }))
    };
    let before = s.store.saved().saves;
    let report = vault
        .rotate(
            &mut rng(),
            &RotateRequest::purposes(vec![web()]),
            &mut callbacks(),
            &s.fakes,
        )
        .expect("rotate");
    assert_eq!(report.rotated.len(), 1);
    assert_eq!(report.revoked, vec![report.rotated[0].old.clone()]);
    check_finished(&s);
    // Every remote step begins only after the step before it was saved.
    let points = points.lock().expect("points").clone();
    let saved_by = |p: &str| points.iter().find(|(q, _)| q == p).map(|(_, n)| *n);
    let prepared = saved_by("prepared").expect("prepared");
    assert!(prepared > before);
    assert!(saved_by("write:runpod").expect("write") >= prepared);
    assert!(saved_by("promoted") > saved_by("added:file:/fake/b"));
    assert!(saved_by("write:file:/fake/a").is_some());
    // RunPod swapped in one write (no removal pass); the files had their own.
    assert_eq!(
        points.iter().filter(|(p, _)| p == "write:runpod").count(),
        1
    );
    let saved = s.store.saved();
    let actions: Vec<&str> = saved.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions[actions.len() - 8..],
        [
            "rotate-start",
            "deploy",
            "deploy",
            "deploy",
            "rotate",
            "undeploy",
            "undeploy",
            "revoke"
        ]
    );
}

#[test]
fn a_failing_target_leaves_a_resumable_journal_and_the_next_run_finishes() {
    let s = setup();
    s.fakes.world().failing.insert("file:/fake/b".to_owned());
    let err = rotate(&s, &RotateRequest::purposes(vec![web()])).expect_err("b fails");
    assert!(matches!(err, Error::Incomplete { .. }), "{err:?}");
    check_invariants(&s.store, &s.fakes, "after the failure");
    {
        let saved = s.store.saved();
        let e = saved.state.rotation(&web()).expect("journaled");
        assert_eq!(e.step(), Step::Adding);
        // Targets in order: a got the new key, b failed, and the rotation stopped there.
        assert!(e.targets()[&spec("file:/fake/a")].added);
        assert!(!e.targets()[&spec("file:/fake/b")].added && !e.targets()[&spec("runpod")].added);
        // Not promoted: the old key is still the active one.
        assert_eq!(saved.state.active(&web()).map(|k| k.id()), Some(e.old()));
    }
    s.fakes.world().failing.clear();
    let plan = s
        .vault
        .plan_rotation(&RotateRequest::purposes(vec![web()]))
        .expect("plan");
    assert_eq!(plan.rotations[0].resumes, Some(Step::Adding));
    rotate(&s, &RotateRequest::purposes(vec![web()])).expect("resume");
    check_finished(&s);
}

#[test]
fn a_write_whose_answer_was_lost_is_read_back_and_not_repeated() {
    let s = setup();
    s.fakes.world().losing.insert("file:/fake/a".to_owned());
    rotate(&s, &RotateRequest::purposes(vec![web()])).expect_err("answer lost");
    check_invariants(&s.store, &s.fakes, "after the lost answer");
    // The journal does not know the key arrived; the target has it.
    let new = {
        let saved = s.store.saved();
        let e = saved.state.rotation(&web()).expect("journaled");
        assert!(!e.targets()[&spec("file:/fake/a")].added);
        *saved.state.get(e.new_key()).expect("new").fingerprint()
    };
    assert!(s.fakes.holds("file:/fake/a").contains(&new));
    rotate(&s, &RotateRequest::purposes(vec![web()])).expect("resume");
    check_finished(&s);
    assert_eq!(
        s.fakes.world().lists["file:/fake/a"].len(),
        2,
        "the new key is there once"
    );
}

#[test]
fn a_crash_at_any_step_leaves_a_state_the_next_run_finishes() {
    let points = [
        "prepared",
        "write:runpod",
        "written:runpod",
        "added:runpod",
        "written:file:/fake/a",
        "added:file:/fake/b",
        "promoted",
        "write:file:/fake/a",
        "removed:file:/fake/a",
    ];
    for crash_at in points {
        let s = setup();
        let fired = Arc::new(Mutex::new(false));
        let crashing = {
            let (fired, at) = (fired.clone(), crash_at.to_owned());
            Vault::open(s.vault.home())
                .expect("open")
                .with_store(Arc::new(s.store.clone()))
                .with_fault_hook(Arc::new(move |point: &str| {
                    let mut fired = fired.lock().expect("fired");
                    if point == at && !*fired {
                        *fired = true;
                        return Err(TargetError::Unreachable {
                            target: point.to_owned(),
                            reason: "crash".to_owned(),
                        }
                        .into());
                    }
                    Ok(())
                }))
        };
        let result = crashing.rotate(
            &mut rng(),
            &RotateRequest::purposes(vec![web()]),
            &mut callbacks(),
            &s.fakes,
        );
        assert!(result.is_err(), "a crash at {crash_at} is reported");
        assert!(*fired.lock().expect("fired"), "{crash_at} was reached");
        check_invariants(&s.store, &s.fakes, crash_at);
        drop(crashing);
        rotate(&s, &RotateRequest::purposes(vec![web()]))
            .unwrap_or_else(|e| panic!("resume after a crash at {crash_at}: {e}"));
        check_finished(&s);
    }
}

#[test]
fn a_grace_period_keeps_the_old_key_until_sweep_after_it() {
    let s = setup();
    let grace = Span::from_secs(86_400);
    let report = rotate(&s, &RotateRequest::purposes(vec![web()]).grace(grace)).expect("rotate");
    assert_eq!(report.retiring.len(), 1);
    let (old, new) = {
        let saved = s.store.saved();
        let e = saved
            .state
            .rotation(&web())
            .expect("journaled until the grace ends");
        assert_eq!(e.step(), Step::Promoted);
        let fp = |id| saved.state.get(id).map(|k| *k.fingerprint()).expect("key");
        (fp(e.old()), fp(e.new_key()))
    };
    for t in TARGETS {
        let holds = s.fakes.holds(t);
        assert!(
            holds.contains(&old) && holds.contains(&new),
            "{t} keeps both"
        );
    }
    // Before the end of the grace period sweep changes nothing remote.
    s.vault.sweep(&s.fakes).expect("early sweep");
    assert!(s.fakes.holds("runpod").contains(&old));
    *s.clock.0.lock().expect("clock") += TimeDelta::days(1) + TimeDelta::seconds(1);
    let swept = s.vault.sweep(&s.fakes).expect("sweep");
    assert_eq!(swept.revoked.len(), 1);
    check_finished(&s);
}

#[test]
fn plan_and_rotate_touch_only_the_store_they_are_given() {
    let s = setup();
    let saves = s.store.saved().saves;
    s.vault
        .plan_rotation(&RotateRequest::purposes(vec![web()]))
        .expect("plan");
    assert_eq!(s.store.saved().saves, saves, "planning writes nothing");
    assert!(!s.vault.home().join("inventory.json").exists());
    rotate(&s, &RotateRequest::purposes(vec![web()])).expect("rotate");
    assert!(!s.vault.home().join("inventory.json").exists());
    assert!(!s.vault.home().join("audit.jsonl").exists());
}

#[test]
fn abort_puts_the_old_key_back_where_a_lost_answer_hid_a_swap_then_removes_the_new_one() {
    let s = setup();
    // RunPod swaps atomically: its lost answer leaves the old key gone there, unjournaled.
    s.fakes.world().losing.insert("runpod".to_owned());
    rotate(&s, &RotateRequest::purposes(vec![web()])).expect_err("answer lost");
    check_invariants(&s.store, &s.fakes, "after the lost answer");
    let (old, new) = {
        let saved = s.store.saved();
        let e = saved.state.rotation(&web()).expect("journaled");
        assert!(
            !e.targets()[&spec("runpod")].added,
            "the journal does not know"
        );
        let record = |id| saved.state.get(id).cloned().expect("key");
        (record(e.old()), record(e.new_key()))
    };
    assert!(!s.fakes.holds("runpod").contains(old.fingerprint()));
    let report = s
        .vault
        .abort_rotation(&[web()], &s.fakes, &mut callbacks())
        .expect("abort");
    assert_eq!(report.aborted, vec![new.id().clone()]);
    let saved = s.store.saved();
    assert!(saved.state.journal().is_empty());
    assert_eq!(
        saved.state.get(new.id()).map(|k| k.state()),
        Some(KeyState::Revoked)
    );
    assert_eq!(saved.state.active(&web()).map(|k| k.id()), Some(old.id()));
    for t in TARGETS {
        assert_eq!(
            s.fakes.world().lists[t],
            vec![UNMANAGED.to_owned(), old.deploy_line()],
            "{t}"
        );
    }
}

#[test]
fn a_promoted_rotation_cannot_be_aborted_and_nothing_changes() {
    let s = setup();
    rotate(
        &s,
        &RotateRequest::purposes(vec![web()]).grace(Span::from_secs(3600)),
    )
    .expect("rotate");
    let saves = s.store.saved().saves;
    s.vault
        .abort_rotation(&[web()], &s.fakes, &mut callbacks())
        .expect_err("promoted already");
    assert_eq!(s.store.saved().saves, saves, "nothing written");
    assert!(s.store.saved().state.rotation(&web()).is_some());
}

#[test]
fn rotate_reads_the_state_once_before_the_lock_and_once_under_it() {
    let s = setup();
    let loads = s.store.saved().loads;
    s.vault
        .plan_rotation(&RotateRequest::purposes(vec![web()]))
        .expect("plan");
    assert_eq!(s.store.saved().loads, loads + 1);
    let loads = s.store.saved().loads;
    rotate(&s, &RotateRequest::purposes(vec![web()]).pods(true)).expect("rotate");
    assert_eq!(s.store.saved().loads, loads + 2);
}

/// The target a test names.
fn spec(name: &str) -> TargetSpec {
    name.parse().expect("target")
}

/// The parts of an [`Error::Incomplete`], as the CLI reads them.
fn incomplete(err: Error) -> crate::error::Incomplete {
    match err {
        Error::Incomplete(i) => *i,
        other => panic!("not incomplete: {other:?}"),
    }
}

#[test]
fn abort_that_cannot_remove_the_new_key_from_a_host_says_what_was_removed_and_what_may_remain() {
    use crate::error::{NextStep, Operation, WorkItem};
    let s = setup();
    s.fakes.world().failing.insert("file:/fake/b".to_owned());
    rotate(&s, &RotateRequest::purposes(vec![web()])).expect_err("b fails");
    let (old, new) = {
        let saved = s.store.saved();
        let e = saved.state.rotation(&web()).expect("journaled");
        (e.old().to_string(), e.new_key().to_string())
    };
    let err = s
        .vault
        .abort_rotation(&[web()], &s.fakes, &mut callbacks())
        .expect_err("b still fails");
    let i = incomplete(err);
    assert_eq!(
        i.operation,
        Operation::Rollback {
            purpose: "web".to_owned()
        }
    );
    let at = |t: &str| t.to_owned();
    assert_eq!(
        i.done,
        vec![
            WorkItem::TrustedEverywhere { key: old.clone() },
            WorkItem::Removed {
                key: new.clone(),
                target: at("file:/fake/a")
            },
        ]
    );
    assert_eq!(
        i.pending,
        vec![
            WorkItem::MayStillBeAt {
                key: new.clone(),
                target: at("file:/fake/b")
            },
            WorkItem::MayStillBeAt {
                key: new.clone(),
                target: at("runpod")
            },
        ]
    );
    assert_eq!(
        i.next,
        NextStep::RetryRollBack {
            purpose: "web".to_owned(),
            target: at("file:/fake/b"),
            or_finish: false,
        }
    );
    assert!(
        i.cause.to_string().contains("connection refused"),
        "{}",
        i.cause
    );
    // The journal forgot the adds at a and b before touching them.
    let saved = s.store.saved();
    let e = saved.state.rotation(&web()).expect("still journaled");
    assert!(!e.targets()[&spec("file:/fake/a")].added);
    assert!(!e.targets()[&spec("file:/fake/b")].added);
    assert_eq!(e.targets().len(), 3);
    assert_eq!(
        saved
            .state
            .get(&new.parse().expect("id"))
            .map(|k| k.state()),
        Some(KeyState::Pending)
    );
    assert!(!s.fakes.holds("file:/fake/a").is_empty());
}

#[test]
fn revoke_that_fails_at_a_target_records_what_was_removed_and_says_what_is_left() {
    use crate::error::{NextStep, Operation, WorkItem};
    let s = setup();
    s.fakes.world().failing.insert("file:/fake/b".to_owned());
    let id = s
        .store
        .saved()
        .state
        .active(&web())
        .expect("active")
        .id()
        .clone();
    let err = s
        .vault
        .revoke(&"web".parse().expect("selector"), &s.fakes)
        .expect_err("b fails");
    let i = incomplete(err);
    let key = id.to_string();
    assert_eq!(
        i.operation,
        Operation::Revoke {
            keys: vec![key.clone()]
        }
    );
    assert_eq!(
        i.done,
        vec![WorkItem::Removed {
            key: key.clone(),
            target: "file:/fake/a".to_owned()
        }]
    );
    assert_eq!(
        i.pending,
        vec![
            WorkItem::StillAt {
                key: key.clone(),
                target: "runpod".to_owned()
            },
            WorkItem::StillAt {
                key: key.clone(),
                target: "file:/fake/b".to_owned()
            },
        ]
    );
    assert_eq!(i.next, NextStep::RetryRevoke);
    let saved = s.store.saved();
    let record = saved.state.get(&id).expect("key");
    assert_eq!(
        record.state(),
        KeyState::Active,
        "revoked only once gone everywhere"
    );
    assert_eq!(record.live_targets().len(), 2);
    assert!(s.vault.current_path(&web()).exists());
}

#[test]
fn a_sweep_ends_with_its_event_and_a_sweep_with_nothing_to_do_writes_only_that() {
    let s = setup();
    rotate(
        &s,
        &RotateRequest::purposes(vec![web()]).grace(Span::from_secs(60)),
    )
    .expect("rotate");
    *s.clock.0.lock().expect("clock") += TimeDelta::seconds(61);
    let swept = s.vault.sweep(&s.fakes).expect("sweep");
    assert_eq!(swept.revoked.len(), 1);
    {
        let saved = s.store.saved();
        let last = saved.events.last().expect("events");
        assert_eq!(
            (last.action.as_str(), last.key_id.as_deref()),
            ("sweep", None)
        );
        assert_eq!(last.detail, "swept; 1 key(s) revoked");
    }
    // Nothing to do: one write, of the sweep's event alone.
    let (saves, events) = {
        let saved = s.store.saved();
        (saved.saves, saved.events.len())
    };
    s.vault.sweep(&s.fakes).expect("sweep");
    let saved = s.store.saved();
    assert_eq!((saved.saves, saved.events.len()), (saves + 1, events + 1));
    assert_eq!(saved.events[events].detail, "swept; 0 key(s) revoked");
}

/// `sweep --rotate-due` found `web`'s key due; before its rotation took the lock, another
/// run rotated that key. The rotation of that key only (`only_old`) then rotates nothing:
/// without the check under the lock it would rotate the fresh key a second time.
#[test]
fn a_rotation_of_one_key_that_another_run_rotated_meanwhile_rotates_nothing() {
    struct Meanwhile<'a>(&'a Setup, bool);
    impl crate::callbacks::Callbacks for Meanwhile<'_> {
        fn passphrase(&mut self, _: &crate::PassphraseRequest) -> Result<Passphrase> {
            Ok(Passphrase::new("unused".to_owned()))
        }
        // Called while the new key is generated, before the lock is taken.
        fn progress(&mut self, _: crate::callbacks::Progress) {
            if !std::mem::replace(&mut self.1, true) {
                rotate(self.0, &RotateRequest::purposes(vec![web()])).expect("the other run");
            }
        }
    }
    let s = setup();
    let first = s
        .store
        .saved()
        .state
        .active(&web())
        .expect("active")
        .id()
        .clone();
    let mut request = RotateRequest::purposes(vec![web()]);
    request.only_old = Some(first.clone());
    let e = s
        .vault
        .rotate(&mut rng(), &request, &mut Meanwhile(&s, false), &s.fakes)
        .expect_err("the key was rotated meanwhile");
    assert!(
        matches!(
            e,
            Error::Request(crate::error::RequestError::NothingToRotate)
        ),
        "{e:?}"
    );
    // One rotation happened, the other run's: the active key replaced the first one.
    let active = s
        .store
        .saved()
        .state
        .active(&web())
        .expect("active")
        .clone();
    assert_eq!(active.rotated_from(), Some(&first));
    check_finished(&s);
    // Restricted to the active key, the same request rotates it.
    request.only_old = Some(active.id().clone());
    rotate(&s, &request).expect("the active key rotates");
}

#[test]
fn a_pod_stays_in_the_journal_while_an_account_of_its_rotation_cannot_list_its_pods() {
    use crate::inventory::{JournalEntry, TargetProgress};
    let s = setup();
    let pod = spec("pod:p1/ssh://root@127.0.0.1:2222");
    // One account lists no pods, the other (the pod's, say) cannot be listed now.
    s.fakes.world().pods.insert("runpod".to_owned(), None);
    s.fakes
        .world()
        .pods
        .insert("runpod:team".to_owned(), Some(Vec::new()));
    let mut txn = s.vault.begin(crate::store::View::Live).expect("begin");
    let old = txn.keys()[0].id().clone();
    let progress = TargetProgress {
        added: true,
        ..TargetProgress::default()
    };
    txn.start_rotation(JournalEntry {
        purpose: web(),
        old: old.clone(),
        new: old,
        step: Step::Promoted,
        targets: [
            (spec("runpod"), TargetProgress::default()),
            (spec("runpod:team"), TargetProgress::default()),
            (pod.clone(), progress),
        ]
        .into_iter()
        .collect(),
        grace_until: None,
        started_at: Utc::now(),
    });
    let mut opened = crate::run::Opened::new(&s.fakes);
    let mut report = Report::default();
    s.vault
        .drop_gone_pods(
            &mut txn,
            None,
            &mut opened,
            crate::pods::IdlePods::Drop,
            &mut report,
        )
        .expect("drop");
    let e = txn.rotation(&web()).expect("journaled");
    assert!(e.targets.contains_key(&pod), "dropped as gone: {report:?}");
    assert!(report.pods.is_empty(), "{report:?}");
}
