//! The **transfer payment agreement** of flow F3 (seed 002, claims 1–8): a
//! first device (TV, car, IoT box, PC) may ask the wallet to pay through the
//! user's phone, with one bound card, within limits, for the usage
//! categories allowed, under an approval policy.
//!
//! ```text
//! active ⇄ suspended      (the user, on a trusted phone)
//! active | suspended ──revoked──▶ revoked   (the user, the device unpairing itself, a lost device)
//! ```
//!
//! A payment is judged twice against the agreement (claims 1, 4–5): at the
//! **transfer payment request** against the **first agreement state**, and
//! at the **confirm payment request** against the **second agreement state**
//! (the agreement as it is then, with what was confirmed since). Both
//! judgements are [`AgreementUsage::admit`], so neither can let through what
//! the other would refuse; the store makes them atomic per agreement.

use time::Date;

use crate::error::{DomainError, ErrorCode};
use crate::{Currency, Money, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum AgreementState {
    Active,
    Suspended,
    Revoked,
}

impl AgreementState {
    pub fn as_str(self) -> &'static str {
        match self {
            AgreementState::Active => "active",
            AgreementState::Suspended => "suspended",
            AgreementState::Revoked => "revoked",
        }
    }

    pub fn suspend(self) -> Result<AgreementState, DomainError> {
        match self {
            AgreementState::Active => Ok(AgreementState::Suspended),
            other => Err(not_now(other, "suspended")),
        }
    }

    pub fn resume(self) -> Result<AgreementState, DomainError> {
        match self {
            AgreementState::Suspended => Ok(AgreementState::Active),
            other => Err(not_now(other, "resumed")),
        }
    }

    pub fn revoke(self) -> Result<AgreementState, DomainError> {
        match self {
            AgreementState::Active | AgreementState::Suspended => Ok(AgreementState::Revoked),
            other => Err(not_now(other, "revoked")),
        }
    }
}

fn not_now(state: AgreementState, what: &str) -> DomainError {
    DomainError::new(
        ErrorCode::AgreementInactive,
        format!("a {} agreement cannot be {what}", state.as_str()),
    )
}

/// What a first device may pay for (its **device usage** names one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::EnumIter)]
pub enum UsageCategory {
    /// Renewing a service the device runs (streaming, connectivity).
    Subscription,
    /// A purchase inside an app on the device (a film rental, a game item).
    InApp,
    /// Fuel or charging, from a car.
    Fuel,
    /// Parking and tolls, from a car.
    Parking,
}

impl UsageCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageCategory::Subscription => "subscription",
            UsageCategory::InApp => "in_app",
            UsageCategory::Fuel => "fuel",
            UsageCategory::Parking => "parking",
        }
    }
}

/// Who confirms a payment (claims 6–9). [`ApprovalMode`] is its name
/// alone (what the wire and the store call it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumDiscriminants)]
#[strum_discriminants(name(ApprovalMode), derive(Hash, strum::EnumIter))]
pub enum ApprovalPolicy {
    /// The user confirms every payment on the phone with the biometric.
    EveryPayment,
    /// Payments up to `ceiling` (minor units) go through without a prompt
    /// (小额免密); larger ones are confirmed like [`Self::EveryPayment`].
    SmallAmountsDirect { ceiling: i64 },
}

impl ApprovalMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::EveryPayment => "every_payment",
            ApprovalMode::SmallAmountsDirect => "small_amounts_direct",
        }
    }
}

/// How a payment within the agreement is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ConfirmRoute {
    /// A transfer payment message to the phone; the user answers.
    WithUser,
    /// The confirm payment request is made from the agreement state and
    /// the device usage alone.
    Direct,
}

impl ConfirmRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfirmRoute::WithUser => "with_user",
            ConfirmRoute::Direct => "direct",
        }
    }
}

impl ApprovalPolicy {
    pub fn mode(self) -> ApprovalMode {
        ApprovalMode::from(self)
    }

    /// The policy from its name and, for small amounts, its ceiling.
    pub fn from_parts(mode: ApprovalMode, ceiling: Option<i64>) -> Result<Self, DomainError> {
        match (mode, ceiling) {
            (ApprovalMode::EveryPayment, None) => Ok(ApprovalPolicy::EveryPayment),
            (ApprovalMode::SmallAmountsDirect, Some(ceiling)) => {
                Ok(ApprovalPolicy::SmallAmountsDirect { ceiling })
            }
            (ApprovalMode::EveryPayment, Some(_)) => Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "approval: a direct ceiling goes with small_amounts_direct only",
            )),
            (ApprovalMode::SmallAmountsDirect, None) => Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "approval: small_amounts_direct needs its direct ceiling",
            )),
        }
    }

    /// The direct ceiling, if the policy has one.
    pub fn ceiling(self) -> Option<i64> {
        match self {
            ApprovalPolicy::EveryPayment => None,
            ApprovalPolicy::SmallAmountsDirect { ceiling } => Some(ceiling),
        }
    }

    pub fn route(self, amount: i64) -> ConfirmRoute {
        match self {
            ApprovalPolicy::SmallAmountsDirect { ceiling } if amount <= ceiling => {
                ConfirmRoute::Direct
            }
            _ => ConfirmRoute::WithUser,
        }
    }
}

/// The agreement's limits, in minor units of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgreementLimits {
    pub currency: Currency,
    pub per_payment: i64,
    pub per_day: i64,
    pub per_month: i64,
}

/// Most a device agreement may allow in one month (1,000,000.00 CNY): a
/// typo in a limit is refused, not honoured.
pub const MAX_MONTHLY_LIMIT_MINOR: i64 = 100_000_000;

impl AgreementLimits {
    /// Limits that make sense together: positive, per payment ≤ per day ≤
    /// per month ≤ [`MAX_MONTHLY_LIMIT_MINOR`]; a direct ceiling within the
    /// per-payment limit.
    pub fn check(&self, policy: ApprovalPolicy) -> Result<(), DomainError> {
        let bad = |m: &str| Err(DomainError::new(ErrorCode::InvalidRequest, m));
        if self.per_payment <= 0 || self.per_day <= 0 || self.per_month <= 0 {
            return bad("limits: every limit is a positive amount");
        }
        if self.per_payment > self.per_day || self.per_day > self.per_month {
            return bad("limits: per payment ≤ per day ≤ per month");
        }
        if self.per_month > MAX_MONTHLY_LIMIT_MINOR {
            return bad("limits: at most 100,000,000 minor units a month");
        }
        if let ApprovalPolicy::SmallAmountsDirect { ceiling } = policy {
            if ceiling <= 0 || ceiling > self.per_payment {
                return bad(
                    "approval: the direct ceiling is positive and within the per-payment limit",
                );
            }
        }
        Ok(())
    }
}

/// What a first device says of a payment it asks for (设备使用信息).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUsage {
    pub category: UsageCategory,
    /// The device's own counter: strictly above every one it sent before.
    pub counter: u64,
    /// What it is for, shown to the user ("4K film rental").
    pub purpose: String,
}

/// What the agreement has seen and counted: the device's last counter and
/// the amounts committed today and this month (UTC days; a payment counts
/// from its request until it fails or is declined).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgreementUsage {
    pub last_counter: u64,
    pub day: Option<Date>,
    pub spent_day: i64,
    /// The month as its first day.
    pub month: Option<Date>,
    pub spent_month: i64,
}

/// One agreement as a payment is judged against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementTerms {
    pub state: AgreementState,
    pub limits: AgreementLimits,
    pub categories: Vec<UsageCategory>,
    pub policy: ApprovalPolicy,
}

impl AgreementTerms {
    /// The terms in one line, in a fixed order (categories sorted): what a
    /// biometric approval of them is bound to, so an approval of other
    /// terms does not pass.
    pub fn canonical(&self) -> String {
        let mut categories: Vec<&str> = self.categories.iter().map(|c| c.as_str()).collect();
        categories.sort_unstable();
        categories.dedup();
        format!(
            "{}/{}/{}/{}/{}/{}:{}",
            self.limits.currency.code(),
            self.limits.per_payment,
            self.limits.per_day,
            self.limits.per_month,
            categories.join(","),
            self.policy.mode().as_str(),
            self.policy.ceiling().unwrap_or(0)
        )
    }

    /// Checks terms as a user chooses them: limits that make sense with
    /// the policy, and at least one category, none twice.
    pub fn check(&self) -> Result<(), DomainError> {
        self.limits.check(self.policy)?;
        if self.categories.is_empty() || self.categories.len() > MAX_CATEGORIES {
            return Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "categories: at least one of subscription, in_app, fuel, parking",
            ));
        }
        let mut seen = self.categories.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.categories.len() {
            return Err(DomainError::new(
                ErrorCode::InvalidRequest,
                "categories: each category once",
            ));
        }
        Ok(())
    }

    /// Refusals that hold whatever the usage: not active, the category not
    /// allowed, another currency or no amount.
    fn allows(&self, category: UsageCategory, amount: Money) -> Result<(), DomainError> {
        if self.state != AgreementState::Active {
            return Err(DomainError::new(
                ErrorCode::AgreementInactive,
                format!("this device's agreement is {}", self.state.as_str()),
            ));
        }
        if !self.categories.contains(&category) {
            return Err(DomainError::new(
                ErrorCode::CategoryNotAllowed,
                format!(
                    "the agreement does not allow {} payments",
                    category.as_str()
                ),
            ));
        }
        if amount.currency != self.limits.currency || amount.amount_minor <= 0 {
            return Err(DomainError::new(
                ErrorCode::InvalidRequest,
                format!("amount: a positive amount in {}", self.limits.currency),
            ));
        }
        Ok(())
    }
}

/// How many usage categories an agreement can name (all of them).
pub const MAX_CATEGORIES: usize = 4;

fn first_of_month(d: Date) -> Date {
    d.replace_day(1).expect("day 1 exists in every month")
}

impl AgreementUsage {
    /// The counts as of `now`: a new day or month starts from zero.
    pub fn rolled(self, now: Timestamp) -> AgreementUsage {
        let today = now.date();
        let month = first_of_month(today);
        AgreementUsage {
            last_counter: self.last_counter,
            day: Some(today),
            spent_day: if self.day == Some(today) {
                self.spent_day
            } else {
                0
            },
            month: Some(month),
            spent_month: if self.month == Some(month) {
                self.spent_month
            } else {
                0
            },
        }
    }

    /// Identifies a request's device usage against the agreement (the
    /// first agreement state): active, the category allowed, the counter
    /// new, the amount within each limit. Answers the usage with this
    /// payment counted, and how it is confirmed.
    pub fn admit(
        self,
        terms: &AgreementTerms,
        usage: &DeviceUsage,
        amount: Money,
        now: Timestamp,
    ) -> Result<(AgreementUsage, ConfirmRoute), DomainError> {
        terms.allows(usage.category, amount)?;
        if usage.counter <= self.last_counter {
            return Err(DomainError::new(
                ErrorCode::DeviceCounterReplayed,
                format!(
                    "the device's counter must be above {} (a replayed request?)",
                    self.last_counter
                ),
            ));
        }
        let counted = self.count(&terms.limits, amount.amount_minor, now)?;
        Ok((
            AgreementUsage {
                last_counter: usage.counter,
                ..counted
            },
            terms.policy.route(amount.amount_minor),
        ))
    }

    /// The second agreement state (claim 10): at the confirm payment
    /// request the agreement is judged again as it is now: still active,
    /// the category still allowed, and this payment (counted at
    /// `counted_at` by the first state) within each limit as the limits
    /// are now, with every payment counted since. Answers the usage with
    /// this payment counted again, now.
    pub fn reconfirm(
        self,
        terms: &AgreementTerms,
        category: UsageCategory,
        amount: Money,
        counted_at: Timestamp,
        now: Timestamp,
    ) -> Result<AgreementUsage, DomainError> {
        terms.allows(category, amount)?;
        self.release(amount.amount_minor, counted_at)
            .count(&terms.limits, amount.amount_minor, now)
    }

    /// `a` counted today and this month, if every limit holds.
    fn count(
        self,
        limits: &AgreementLimits,
        a: i64,
        now: Timestamp,
    ) -> Result<AgreementUsage, DomainError> {
        let now_usage = self.rolled(now);
        let over = |which: &str, limit: i64, left: i64| {
            Err(DomainError::new(
                ErrorCode::AmountOverLimit,
                format!("over the agreement's {which} limit of {limit} ({left} left)"),
            ))
        };
        if a > limits.per_payment {
            return over("per-payment", limits.per_payment, limits.per_payment);
        }
        let day = now_usage.spent_day.saturating_add(a);
        if day > limits.per_day {
            return over(
                "daily",
                limits.per_day,
                (limits.per_day - now_usage.spent_day).max(0),
            );
        }
        let month = now_usage.spent_month.saturating_add(a);
        if month > limits.per_month {
            return over(
                "monthly",
                limits.per_month,
                (limits.per_month - now_usage.spent_month).max(0),
            );
        }
        Ok(AgreementUsage {
            spent_day: day,
            spent_month: month,
            ..now_usage
        })
    }

    /// Gives back a payment that did not go through (declined, failed,
    /// expired), in the day and month it was counted in.
    pub fn release(self, amount: i64, counted_at: Timestamp) -> AgreementUsage {
        let mut out = self;
        if self.day == Some(counted_at.date()) {
            out.spent_day = (self.spent_day - amount).max(0);
        }
        if self.month == Some(first_of_month(counted_at.date())) {
            out.spent_month = (self.spent_month - amount).max(0);
        }
        out
    }

    /// What is left today and this month, for the device's own view.
    pub fn left(self, limits: &AgreementLimits, now: Timestamp) -> (i64, i64) {
        let u = self.rolled(now);
        (
            (limits.per_day - u.spent_day).max(0),
            (limits.per_month - u.spent_month).max(0),
        )
    }
}

crate::wire_names!(AgreementState, UsageCategory, ApprovalMode, ConfirmRoute);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-12-01 10:00 UTC);

    fn cny(n: i64) -> Money {
        Money::new(n, "CNY".parse().unwrap())
    }

    fn terms(policy: ApprovalPolicy) -> AgreementTerms {
        AgreementTerms {
            state: AgreementState::Active,
            limits: AgreementLimits {
                currency: "CNY".parse().unwrap(),
                per_payment: 5_000,
                per_day: 8_000,
                per_month: 20_000,
            },
            categories: vec![UsageCategory::InApp, UsageCategory::Subscription],
            policy,
        }
    }

    fn usage(counter: u64) -> DeviceUsage {
        DeviceUsage {
            category: UsageCategory::InApp,
            counter,
            purpose: "4K film rental".into(),
        }
    }

    #[test]
    fn the_lifecycle_suspends_resumes_and_revokes_once() {
        let s = AgreementState::Active.suspend().unwrap();
        assert_eq!(s.suspend().unwrap_err().code, ErrorCode::AgreementInactive);
        assert_eq!(s.resume().unwrap(), AgreementState::Active);
        let r = s.revoke().unwrap();
        for refused in [r.resume(), r.suspend(), r.revoke()] {
            assert_eq!(refused.unwrap_err().code, ErrorCode::AgreementInactive);
        }
    }

    #[test]
    fn limits_must_make_sense_together() {
        let t = terms(ApprovalPolicy::EveryPayment);
        assert!(t.limits.check(t.policy).is_ok());
        let mut l = t.limits;
        l.per_payment = 9_000;
        assert!(l.check(t.policy).is_err());
        let mut l = t.limits;
        l.per_day = 0;
        assert!(l.check(t.policy).is_err());
        assert!(t
            .limits
            .check(ApprovalPolicy::SmallAmountsDirect { ceiling: 6_000 })
            .is_err());
        assert!(t
            .limits
            .check(ApprovalPolicy::SmallAmountsDirect { ceiling: 500 })
            .is_ok());
    }

    #[test]
    fn each_rule_of_the_first_agreement_state_refuses_with_its_own_code() {
        let t = terms(ApprovalPolicy::EveryPayment);
        let u = AgreementUsage::default();
        let (u, route) = u.admit(&t, &usage(1), cny(3_000), T0).unwrap();
        assert_eq!(route, ConfirmRoute::WithUser);
        assert_eq!(
            (u.last_counter, u.spent_day, u.spent_month),
            (1, 3_000, 3_000)
        );

        let code = |r: Result<_, DomainError>| r.unwrap_err().code;
        assert_eq!(
            code(u.admit(&t, &usage(1), cny(1), T0)),
            ErrorCode::DeviceCounterReplayed
        );
        assert_eq!(
            code(u.admit(&t, &usage(2), cny(5_001), T0)),
            ErrorCode::AmountOverLimit
        );
        let (u2, _) = u.admit(&t, &usage(2), cny(5_000), T0).unwrap();
        assert_eq!(
            code(u2.admit(&t, &usage(3), cny(1), T0)),
            ErrorCode::AmountOverLimit,
            "daily"
        );
        let fuel = DeviceUsage {
            category: UsageCategory::Fuel,
            ..usage(9)
        };
        assert_eq!(
            code(u.admit(&t, &fuel, cny(1), T0)),
            ErrorCode::CategoryNotAllowed
        );
        let usd = Money::new(1, "USD".parse().unwrap());
        assert_eq!(
            code(u.admit(&t, &usage(9), usd, T0)),
            ErrorCode::InvalidRequest
        );
        let suspended = AgreementTerms {
            state: AgreementState::Suspended,
            ..t.clone()
        };
        assert_eq!(
            code(u.admit(&suspended, &usage(9), cny(1), T0)),
            ErrorCode::AgreementInactive
        );
    }

    #[test]
    fn a_new_day_and_a_new_month_start_from_zero_and_the_month_holds_across_days() {
        let t = terms(ApprovalPolicy::EveryPayment);
        let mut u = AgreementUsage::default();
        let mut counter = 0;
        // 8,000 a day for two days, then the month's 20,000 stops the third.
        for day in 0..2 {
            let at = T0 + time::Duration::days(day);
            for _ in 0..2 {
                counter += 1;
                u = u.admit(&t, &usage(counter), cny(4_000), at).unwrap().0;
            }
        }
        let third = T0 + time::Duration::days(2);
        u = u
            .admit(&t, &usage(counter + 1), cny(4_000), third)
            .unwrap()
            .0;
        let e = u.admit(&t, &usage(counter + 2), cny(1), third).unwrap_err();
        assert!(
            e.message.contains("monthly") || e.message.contains("daily"),
            "{e:?}"
        );
        let next_month = datetime!(2027-01-01 00:00 UTC);
        let (fresh, _) = u
            .admit(&t, &usage(counter + 3), cny(5_000), next_month)
            .unwrap();
        assert_eq!((fresh.spent_day, fresh.spent_month), (5_000, 5_000));
    }

    #[test]
    fn small_amounts_go_direct_under_that_policy_only() {
        let direct = terms(ApprovalPolicy::SmallAmountsDirect { ceiling: 1_000 });
        let u = AgreementUsage::default();
        assert_eq!(
            u.admit(&direct, &usage(1), cny(1_000), T0).unwrap().1,
            ConfirmRoute::Direct
        );
        assert_eq!(
            u.admit(&direct, &usage(1), cny(1_001), T0).unwrap().1,
            ConfirmRoute::WithUser
        );
        let every = terms(ApprovalPolicy::EveryPayment);
        assert_eq!(
            u.admit(&every, &usage(1), cny(1), T0).unwrap().1,
            ConfirmRoute::WithUser
        );
    }

    #[test]
    fn a_released_payment_is_given_back_in_its_own_day_only() {
        let t = terms(ApprovalPolicy::EveryPayment);
        let (u, _) = AgreementUsage::default()
            .admit(&t, &usage(1), cny(3_000), T0)
            .unwrap();
        let back = u.release(3_000, T0);
        assert_eq!(
            (back.spent_day, back.spent_month, back.last_counter),
            (0, 0, 1)
        );
        // Counted yesterday: today's count is not touched.
        let tomorrow = u.rolled(T0 + time::Duration::days(1));
        assert_eq!(tomorrow.release(3_000, T0).spent_day, 0);
        assert_eq!(tomorrow.release(3_000, T0).spent_month, 0);
        assert_eq!(u.left(&t.limits, T0), (5_000, 17_000));
    }

    #[test]
    fn the_second_agreement_state_counts_what_was_confirmed_since_and_the_limits_as_they_are_now() {
        let mut t = terms(ApprovalPolicy::EveryPayment);
        let (u, _) = AgreementUsage::default()
            .admit(&t, &usage(1), cny(3_000), T0)
            .unwrap();
        // Still within: judged again, it stays counted once.
        let again = u
            .reconfirm(&t, UsageCategory::InApp, cny(3_000), T0, T0)
            .unwrap();
        assert_eq!((again.spent_day, again.spent_month), (3_000, 3_000));
        // Another payment of 5,000 was counted meanwhile: 8,000 is the day's limit, still fine.
        let (busy, _) = u.admit(&t, &usage(2), cny(5_000), T0).unwrap();
        assert!(busy
            .reconfirm(&t, UsageCategory::InApp, cny(3_000), T0, T0)
            .is_ok());
        // The user lowered the daily limit meanwhile: the second state refuses.
        t.limits.per_day = 6_000;
        let e = busy
            .reconfirm(&t, UsageCategory::InApp, cny(3_000), T0, T0)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AmountOverLimit);
        // Suspended or the category withdrawn meanwhile: refused too.
        let mut s = terms(ApprovalPolicy::EveryPayment);
        s.state = AgreementState::Suspended;
        assert_eq!(
            u.reconfirm(&s, UsageCategory::InApp, cny(3_000), T0, T0)
                .unwrap_err()
                .code,
            ErrorCode::AgreementInactive
        );
        let mut c = terms(ApprovalPolicy::EveryPayment);
        c.categories = vec![UsageCategory::Subscription];
        assert_eq!(
            u.reconfirm(&c, UsageCategory::InApp, cny(3_000), T0, T0)
                .unwrap_err()
                .code,
            ErrorCode::CategoryNotAllowed
        );
        // Counted yesterday, confirmed today: it counts today.
        let next_day = T0 + time::Duration::days(1);
        let today = u
            .reconfirm(
                &terms(ApprovalPolicy::EveryPayment),
                UsageCategory::InApp,
                cny(3_000),
                T0,
                next_day,
            )
            .unwrap();
        assert_eq!((today.day, today.spent_day), (Some(next_day.date()), 3_000));
    }

    #[test]
    fn terms_are_checked_and_their_canonical_line_is_stable() {
        let mut t = terms(ApprovalPolicy::SmallAmountsDirect { ceiling: 500 });
        assert!(t.check().is_ok());
        assert_eq!(
            t.canonical(),
            "CNY/5000/8000/20000/in_app,subscription/small_amounts_direct:500"
        );
        t.categories.reverse();
        assert_eq!(
            t.canonical(),
            "CNY/5000/8000/20000/in_app,subscription/small_amounts_direct:500"
        );
        t.categories.push(UsageCategory::InApp);
        assert_eq!(t.check().unwrap_err().code, ErrorCode::InvalidRequest);
        t.categories.clear();
        assert_eq!(t.check().unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(
            ApprovalPolicy::from_parts(ApprovalMode::SmallAmountsDirect, None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            ApprovalPolicy::from_parts(ApprovalMode::SmallAmountsDirect, Some(9)).unwrap(),
            ApprovalPolicy::SmallAmountsDirect { ceiling: 9 }
        );
    }

    proptest! {
        /// However payments are admitted and released, the counts never
        /// pass a limit and the counter only grows.
        #[test]
        fn admitted_payments_never_exceed_a_limit(
            steps in proptest::collection::vec((1i64..6_000, 0i64..40, any::<bool>()), 1..60)
        ) {
            let t = terms(ApprovalPolicy::EveryPayment);
            let mut u = AgreementUsage::default();
            let mut counter = 0;
            let mut hours = 0;
            for (amount, advance, release) in steps {
                hours += advance;
                let at = T0 + time::Duration::hours(hours);
                counter += 1;
                if let Ok((next, _)) = u.admit(&t, &usage(counter), cny(amount), at) {
                    prop_assert!(next.spent_day <= t.limits.per_day);
                    prop_assert!(next.spent_month <= t.limits.per_month);
                    prop_assert!(next.last_counter > u.last_counter);
                    u = if release { next.release(amount, at) } else { next };
                }
            }
        }
    }
}
