use super::*;

const DAY: i64 = DAY_MS;

fn rules() -> WalletRules {
    WalletRules {
        expires_after_days: Some(10),
        notify_before_days: Some(3),
        by_type: BTreeMap::from([("BONUS".to_owned(), 1)]),
    }
}

#[test]
fn points_expire_at_the_end_of_the_day_after_their_term() {
    let r = rules();
    assert_eq!(r.expiry_of("LOGIN", 5 * DAY + 7), Some(16 * DAY));
    assert_eq!(r.expiry_of("BONUS", 5 * DAY), Some(7 * DAY));
    assert_eq!(WalletRules::default().expiry_of("LOGIN", 0), None);
}

#[test]
fn spends_take_the_oldest_points_so_an_expiry_never_takes_spent_ones() {
    let r = rules();
    let mut w = Wallet::default();
    w.earn(40, r.expiry_of("LOGIN", 0));
    w.earn(30, r.expiry_of("LOGIN", 2 * DAY));
    let mut step = WalletStep::default();
    w.spend(50, "order-1", None, DAY, &mut step).unwrap();
    assert_eq!((w.balance(), w.available()), (20, 20));
    assert_eq!(
        w.expiring(DAY),
        vec![(13 * DAY, 20)],
        "the first lot is spent whole"
    );
    w.advance(&r, 11 * DAY, &mut step);
    assert_eq!(w.expired, 0, "nothing left in the lot that expired");
    w.advance(&r, 13 * DAY, &mut step);
    assert_eq!((w.expired, w.balance()), (20, 0));
    assert_eq!(w.earned - w.spent - w.expired, w.balance());
}

#[test]
fn over_available_is_refused_with_what_is_available() {
    let mut w = Wallet::default();
    w.earn(500, None);
    let mut step = WalletStep::default();
    w.hold(450, "cart", 10 * DAY, 0, &mut step).unwrap();
    assert_eq!(
        w.spend(60, "x", None, 0, &mut step),
        Err(WalletError::Insufficient { available: 50 })
    );
    assert_eq!(w.spent, 0);
}

#[test]
fn holds_capture_part_release_the_rest_and_expire_by_themselves() {
    let r = WalletRules::default();
    let mut w = Wallet::default();
    w.earn(100, None);
    let mut step = WalletStep::default();
    w.hold(50, "cart-9", 900_000, 0, &mut step).unwrap();
    assert_eq!((w.held(), w.available()), (50, 50));
    w.capture("cart-9", Some(40), 1, &mut step).unwrap();
    assert_eq!((w.spent, w.held(), w.available()), (40, 0, 60));
    let kinds: Vec<EntryKind> = step.entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EntryKind::Hold, EntryKind::Capture, EntryKind::Release]
    );
    assert_eq!(step.entries[2].amount, 10);
    assert_eq!(
        w.void("cart-9", 2, &mut step),
        Err(WalletError::NotOpen(HoldStatus::Captured))
    );
    assert_eq!(
        w.capture("nope", None, 2, &mut step),
        Err(WalletError::NoHold)
    );

    w.hold(30, "cart-10", 1_000, 0, &mut step).unwrap();
    assert_eq!(
        w.capture("cart-10", Some(31), 1, &mut step),
        Err(WalletError::OverCapture { held: 30 })
    );
    w.advance(&r, 1_000, &mut step);
    assert_eq!(w.holds["cart-10"].status, HoldStatus::Expired);
    assert_eq!(w.available(), 60);
}

#[test]
fn penalties_take_from_the_oldest_lots_and_debts_are_paid_first() {
    let mut w = Wallet::default();
    w.earn(10, Some(5));
    w.earn(-25, None);
    assert_eq!((w.balance(), w.debt, w.lots.len()), (-15, 15, 0));
    w.earn(20, Some(9));
    assert_eq!((w.balance(), w.debt), (5, 0));
    assert_eq!(
        w.lots,
        vec![Lot {
            expires_ms: Some(9),
            points: 5
        }]
    );
}

#[test]
fn expiring_points_are_announced_once_ahead_of_their_date() {
    let r = rules();
    let mut w = Wallet::default();
    w.earn(40, r.expiry_of("LOGIN", 0)); // expires at day 11
    let mut step = WalletStep::default();
    w.advance(&r, 7 * DAY, &mut step);
    assert!(step.notices.is_empty(), "more than 3 days ahead");
    assert_eq!(w.next_due(&r), Some(8 * DAY));
    w.advance(&r, 8 * DAY, &mut step);
    w.advance(&r, 9 * DAY, &mut step);
    assert_eq!(
        step.notices,
        [WalletNotice::Expiring {
            at_ms: 11 * DAY,
            points: 40
        }]
    );
    assert_eq!(w.next_due(&r), Some(11 * DAY));
    w.advance(&r, 11 * DAY, &mut step);
    assert!(matches!(
        step.notices.last(),
        Some(WalletNotice::Expired { .. })
    ));
    assert_eq!(
        step.entries.last().unwrap().dedup_key(),
        format!("wallet:expire:{}", 11 * DAY)
    );
}

mod laws {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Earn(i64, u8),
        Spend(i64),
        Hold(i64, u8),
        Capture(u8, Option<i64>),
        Void(u8),
        Advance(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (-30i64..60, 0u8..20).prop_map(|(p, d)| Op::Earn(p, d)),
            (1i64..50).prop_map(Op::Spend),
            (1i64..50, 0u8..4).prop_map(|(a, h)| Op::Hold(a, h)),
            (0u8..4, proptest::option::of(1i64..50)).prop_map(|(h, a)| Op::Capture(h, a)),
            (0u8..4).prop_map(Op::Void),
            (1u8..5).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Whatever happens, the lots less the debt are the balance, the balance is
        /// earned − spent − expired, nothing refused changes a number, and a spend is
        /// never over what was available.
        #[test]
        fn the_wallet_always_adds_up(ops in proptest::collection::vec(op(), 0..60)) {
            let rules = WalletRules { expires_after_days: Some(3), notify_before_days: Some(1), ..WalletRules::default() };
            let mut w = Wallet::default();
            let mut now = 0;
            for op in ops {
                let mut step = WalletStep::default();
                let before = w.clone();
                let available = w.available();
                let result = match op {
                    Op::Earn(p, d) => { w.earn(p, rules.expiry_of("X", now + i64::from(d) * DAY)); Ok(()) }
                    Op::Spend(a) => w.spend(a, "s", None, now, &mut step).map(|_| ()),
                    Op::Hold(a, h) => {
                        if w.holds.contains_key(&format!("h{h}")) { Ok(()) }
                        else { w.hold(a, &format!("h{h}"), now + DAY, now, &mut step).map(|_| ()) }
                    }
                    Op::Capture(h, a) => w.capture(&format!("h{h}"), a, now, &mut step).map(|_| ()),
                    Op::Void(h) => w.void(&format!("h{h}"), now, &mut step).map(|_| ()),
                    Op::Advance(d) => { now += i64::from(d) * DAY / 2; w.advance(&rules, now, &mut step); Ok(()) }
                };
                if result.is_err() {
                    prop_assert_eq!(&w, &before);
                }
                if let (Ok(()), Op::Spend(a)) = (&result, &op) {
                    prop_assert!(*a <= available);
                }
                let lots: i64 = w.lots.iter().map(|l| l.points).sum();
                prop_assert_eq!(lots - w.debt, w.balance());
                prop_assert_eq!(w.balance(), w.earned - w.spent - w.expired);
                prop_assert!(w.lots.iter().all(|l| l.points > 0));
            }
        }
    }
}
