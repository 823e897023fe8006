//! Passwords (argon2id), session tokens, session resolution and login throttling.

use crate::error::{ApiError, ApiResult, Code};
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rkflow_domain::Actor;
use rkflow_store::entity::user;
use rkflow_store::{Db, Origin, Reader, accounts};
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Passwords so common that they are refused whatever their length.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456123456",
    "password1234",
    "password12345",
    "passwordpassword",
    "qwertyuiop12",
    "qwertyqwerty",
    "111111111111",
    "000000000000",
    "iloveyou1234",
    "welkom123456",
    "wachtwoord12",
    "wachtwoord123",
    "wachtwoord1234",
    "welkomwelkom",
    "letmein12345",
    "administrator",
    "adminadmin12",
    "changeme1234",
    "abcdefghijkl",
    "abc123abc123",
    "rekenkamer2019",
    "rekenkamer123",
    "gemeente1234",
    "zomer2019zomer",
    "voorjaar2019!",
    "Welkom01Welkom",
    "Password123!",
];

/// Words that, padded only with digits or symbols, make a guessable password.
const COMMON_WORDS: &[&str] = &[
    "password",
    "passwords",
    "wachtwoord",
    "welkom",
    "welcome",
    "qwerty",
    "azerty",
    "letmein",
    "admin",
    "administrator",
    "rekenkamer",
    "rekenkamercommissie",
    "gemeente",
    "griffie",
    "bloemendaal",
    "heemstede",
    "haarlem",
    "amsterdam",
    "rotterdam",
    "utrecht",
    "nederland",
    "holland",
    "voorjaar",
    "zomer",
    "herfst",
    "winter",
    "januari",
    "februari",
    "maart",
    "april",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
    "iloveyou",
    "monkey",
    "dragon",
    "football",
    "sunshine",
    "princess",
    "rkflow",
    "changeme",
    "geheim",
    "secret",
];

/// Whether the password is a run of consecutive characters ("123456789012", "abcdefghijkl")
/// or a stretch of the keyboard's letter rows.
fn is_sequence(password: &str) -> bool {
    let bytes = password.as_bytes();
    bytes.len() >= 8
        && (bytes.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
            || bytes.windows(2).all(|w| w[1].wrapping_add(1) == w[0])
            || "1234567890".repeat(4).contains(password)
            || "qwertyuiopasdfghjklzxcvbnm".contains(password))
}

/// Session and login settings.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A session ends this long after login, whatever happens.
    pub absolute_timeout: Duration,
    /// Window in which failed logins are counted.
    pub throttle_window: Duration,
    /// Failed logins per account within the window before TOO_MANY_REQUESTS (a wrong current
    /// password in a password change counts as one).
    pub max_failures_per_account: u64,
    /// Failed logins per client address within the window before TOO_MANY_REQUESTS.
    pub max_failures_per_client: u64,
    /// argon2id parameters for new hashes (one of [`ARGON2_OWASP_SETTINGS`] or stronger);
    /// stored hashes below them are rehashed on login.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            idle_timeout: Duration::minutes(60),
            absolute_timeout: Duration::hours(12),
            throttle_window: Duration::minutes(15),
            max_failures_per_account: 5,
            max_failures_per_client: 50,
            argon2_memory_kib: DEFAULT_ARGON2_MEMORY_KIB,
            argon2_iterations: DEFAULT_ARGON2_ITERATIONS,
            argon2_parallelism: 1,
        }
    }
}

/// OWASP's argon2id settings (Password Storage Cheat Sheet), as (memory in KiB, iterations),
/// with parallelism 1. OWASP rates them as equal defences that trade memory for CPU; a
/// configuration must reach at least one of them in both memory and iterations.
pub const ARGON2_OWASP_SETTINGS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

/// The default: OWASP's 12 MiB / 3 iterations row. It costs the same CPU per hash as the
/// 19 MiB / 2 row (memory × iterations within 6 %) and two thirds of its memory, which a
/// login holds while it hashes ([`Passwords`]: on a two-core server one login at a time,
/// 12 MiB instead of 19 MiB; BENCHMARKS.md, W4).
pub const DEFAULT_ARGON2_MEMORY_KIB: u32 = 12_288;
pub const DEFAULT_ARGON2_ITERATIONS: u32 = 3;

/// Whether argon2id with this memory (KiB) and these iterations reaches one of
/// [`ARGON2_OWASP_SETTINGS`].
pub fn argon2_meets_owasp(memory_kib: u32, iterations: u32) -> bool {
    ARGON2_OWASP_SETTINGS
        .iter()
        .any(|&(memory, passes)| memory_kib >= memory && iterations >= passes)
}

/// How a login ended, for the server's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    Success,
    /// Wrong password, unknown or disabled account.
    Failure,
    /// Refused by the throttle (TOO_MANY_REQUESTS).
    Throttled,
}

/// Told the outcome of every `login` (the server counts them); does nothing by default.
#[derive(Clone, Default)]
pub struct LoginObserver(Option<Arc<dyn Fn(LoginOutcome) + Send + Sync>>);

impl LoginObserver {
    pub fn new(observe: impl Fn(LoginOutcome) + Send + Sync + 'static) -> LoginObserver {
        LoginObserver(Some(Arc::new(observe)))
    }

    /// Reports a login's result (other errors, e.g. INTERNAL, are not logins that ended).
    pub fn observe<T>(&self, result: &ApiResult<T>) {
        let outcome = match result {
            Ok(_) => LoginOutcome::Success,
            Err(err) if err.code == Code::Unauthenticated => LoginOutcome::Failure,
            Err(err) if err.code == Code::TooManyRequests => LoginOutcome::Throttled,
            Err(_) => return,
        };
        if let Some(observe) = &self.0 {
            observe(outcome);
        }
    }
}

/// Hashes and verifies passwords off the async threads, at most half as many at once as there
/// are cores (at least one): a login storm takes at most half the cores, so the other requests
/// keep the rest, and the working memory held for hashing stays at one argon2 block per two
/// cores (12 MiB by default; on the two-core reference machine the server's peak stays within
/// its 100 MB budget while logins run, BENCHMARKS.md W4). Logins wait for a permit in turn.
///
/// The working memory of the hashes is kept from one to the next while logins come in
/// ([`WorkingMemory`]): allocated anew for each hash, a block freed a moment before sometimes
/// still counted while the next one was filled, and the server's resident memory jumped by a
/// second block (W4 at concurrency 16: 52–54 MB, with peaks of 66 MB; BENCHMARKS.md).
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<OnceLock<String>>,
    memory: WorkingMemory,
}

/// argon2's working memory (`m_cost` KiB per hash, 12 MiB by default), one buffer per hash
/// that may run at once, kept from one hash to the next while logins come in and given back
/// [`WORKING_MEMORY_KEPT_FOR`] after the last one, instead of 12 MiB allocated and freed per
/// login. argon2 writes every block before reading it, so what a buffer held before does not
/// enter the next hash.
#[derive(Clone)]
struct WorkingMemory {
    kept: Arc<std::sync::Mutex<KeptMemory>>,
    kept_for: std::time::Duration,
}

#[derive(Default)]
struct KeptMemory {
    buffers: Vec<Vec<Block>>,
    /// Buffers given back so far: a release finds whether another came back after it was
    /// planned.
    returns: u64,
}

/// How long argon2's working memory stays allocated after the last hash: logins in a row
/// (a burst, one client after another) reuse it, and a server without logins does not hold
/// it (12 MiB by default, an eighth of the benchmark's 100 MB budget).
const WORKING_MEMORY_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl WorkingMemory {
    fn new(kept_for: std::time::Duration) -> WorkingMemory {
        WorkingMemory {
            kept: Arc::default(),
            kept_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptMemory> {
        // Each change is one push, pop or swap: a poisoned lock holds nothing half-done.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `hash` in a buffer of at least `blocks` blocks (the server's own parameters), then
    /// keeps the buffer for the next hash ([`WorkingMemory::give_back`]).
    fn with<T>(&self, blocks: usize, hash: impl FnOnce(&mut Vec<Block>) -> T) -> T {
        let mut memory = self.take(blocks);
        let result = hash(&mut memory);
        self.give_back(memory, blocks);
        result
    }

    /// A buffer of at least `blocks` blocks (a kept one when it is large enough).
    fn take(&self, blocks: usize) -> Vec<Block> {
        let kept = self.lock().buffers.pop();
        match kept {
            Some(memory) if memory.len() >= blocks => memory,
            // None kept (the first of a burst), or one for smaller parameters than a stored
            // hash's: this one replaces it.
            _ => vec![Block::default(); blocks],
        }
    }

    /// Keeps `memory` for the next hash, unless it is larger than `largest` blocks (grown for
    /// a stored hash of larger parameters than the server's own: freed), and plans to free
    /// what is kept once no buffer has come back for `kept_for`. Called on the runtime's
    /// threads (a blocking task's included); elsewhere nothing is kept.
    fn give_back(&self, memory: Vec<Block>, largest: usize) {
        if memory.len() > largest {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let returned = {
            let mut kept = self.lock();
            kept.buffers.push(memory);
            kept.returns += 1;
            kept.returns
        };
        let this = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(this.kept_for).await;
            let freed = {
                let mut kept = this.lock();
                if kept.returns != returned {
                    return;
                }
                std::mem::take(&mut kept.buffers)
            };
            drop(freed);
        });
    }

    /// The sizes of the buffers kept now (tests).
    #[cfg(test)]
    fn kept_sizes(&self) -> Vec<usize> {
        self.lock().buffers.iter().map(Vec::len).collect()
    }
}

/// argon2's output for `password` and `salt` with `argon2`'s parameters (their output length,
/// else argon2's default), computed in `memory` (grown when too small): what
/// `PasswordHasher::hash_password_with_salt` computes, without allocating the memory itself.
fn argon2_output(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &Salt,
    memory: &mut Vec<Block>,
) -> Result<Output, argon2::password_hash::Error> {
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN))
        .ok_or(argon2::password_hash::Error::OutputSize)?;
    if memory.len() < params.block_count() {
        *memory = vec![Block::default(); params.block_count()];
    }
    argon2.hash_password_into_with_memory(password, salt.as_ref(), out, &mut memory[..])?;
    Ok(Output::new(out)?)
}

/// A new argon2id PHC string for `password` with a fresh random salt and `params`, as
/// `PasswordHasher::hash_password` writes it.
fn hash_in(
    params: &Params,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> Result<String, argon2::password_hash::Error> {
    let salt = Salt::new(&argon2::password_hash::generate_salt())?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = argon2_output(&argon2, params, password, &salt, memory)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt),
        hash: Some(output),
    }
    .to_string())
}

/// Whether `password` matches the parsed PHC string (any argon2 variant, version and
/// parameters it names), as `PasswordVerifier::verify_password` decides it: the output
/// recomputed with its salt and parameters, compared in constant time.
fn verify_in(parsed: &PasswordHash, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    // `Output`'s equality is constant-time.
    argon2_output(&argon2, &params, password, salt, memory).is_ok_and(|output| output == *expected)
}

/// How many password hashes run at once on a machine with `cores` cores.
pub fn hashes_at_once(cores: usize) -> usize {
    (cores / 2).max(1)
}

impl Passwords {
    pub fn new(config: &AuthConfig) -> ApiResult<Passwords> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|err| ApiError::internal(&err))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Passwords {
            params,
            permits: Arc::new(Semaphore::new(hashes_at_once(cores))),
            dummy: Arc::new(OnceLock::new()),
            memory: WorkingMemory::new(WORKING_MEMORY_KEPT_FOR),
        })
    }

    /// A PHC string of a new argon2id hash with a fresh random salt.
    pub async fn hash(&self, password: &str) -> ApiResult<String> {
        let params = self.params.clone();
        let password = password.to_string();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let memory = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            memory.with(params.block_count(), |blocks| {
                hash_in(&params, password.as_bytes(), blocks)
            })
        })
        .await
        .map_err(|err| ApiError::internal(&err))?
        .map_err(|err| ApiError::internal(&err))
    }

    /// Checks a password. `stored` is `None` for an unknown account: a dummy hash is verified
    /// instead, so both cases take the same time. Returns (matches, needs_rehash).
    pub async fn verify(&self, stored: Option<String>, password: &str) -> ApiResult<(bool, bool)> {
        let known = stored.is_some();
        let stored = match stored {
            Some(hash) => hash,
            None => self.dummy_hash().await?,
        };
        let params = self.params.clone();
        let password = password.to_string();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| ApiError::internal(&e))?;
        // In working memory kept between hashes ([`WorkingMemory`]).
        let memory = self.memory.clone();
        let (matches, weaker) = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return (false, false);
            };
            let matches = memory.with(params.block_count(), |blocks| {
                verify_in(&parsed, password.as_bytes(), blocks)
            });
            let weaker = Params::try_from(&parsed).map_or(true, |old| {
                old.m_cost() < params.m_cost()
                    || old.t_cost() < params.t_cost()
                    || old.p_cost() < params.p_cost()
            }) || parsed.algorithm.as_str() != "argon2id";
            (matches, weaker)
        })
        .await
        .map_err(|err| ApiError::internal(&err))?;
        Ok((known && matches, known && matches && weaker))
    }

    /// Computes the dummy hash for unknown accounts now, so that the first unknown email is
    /// not answered faster or slower than later ones.
    pub async fn warm_up(&self) -> ApiResult<()> {
        self.dummy_hash().await.map(|_| ())
    }

    async fn dummy_hash(&self) -> ApiResult<String> {
        if let Some(hash) = self.dummy.get() {
            return Ok(hash.clone());
        }
        let hash = self
            .hash("rkflow dummy password for unknown accounts")
            .await?;
        Ok(self.dummy.get_or_init(|| hash).clone())
    }
}

/// Checks the password rules and that the password is not built from the account's own
/// email address or name.
pub fn check_password_for(password: &str, email: &str, name: &str) -> ApiResult<()> {
    check_password_rules(password)?;
    let lower = password.to_lowercase();
    let local = accounts::normalize_email(email);
    let local = local.split('@').next().unwrap_or_default().to_string();
    let words = std::iter::once(local.as_str())
        .chain(local.split(['.', '-', '_', '+']))
        .chain(name.split(|c: char| !c.is_alphanumeric()))
        .map(str::to_lowercase)
        .filter(|word| word.chars().count() >= 4)
        .collect::<Vec<_>>();
    if words.iter().any(|word| lower.contains(word.as_str())) {
        return Err(ApiError::bad_input(
            "password",
            "the password must not contain your name or email address",
        ));
    }
    Ok(())
}

/// Checks the password rules.
pub fn check_password_rules(password: &str) -> ApiResult<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_input(
            "password",
            format!("at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(ApiError::bad_input(
            "password",
            format!("at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let lower = password.to_lowercase();
    let distinct: std::collections::BTreeSet<char> = lower.chars().collect();
    if distinct.len() < 4 {
        return Err(ApiError::bad_input(
            "password",
            "the password repeats too few different characters",
        ));
    }
    let letters: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    if COMMON_PASSWORDS
        .iter()
        .any(|common| common.to_lowercase() == lower)
        || COMMON_WORDS.iter().any(|word| letters == *word)
        || is_sequence(&lower)
    {
        return Err(ApiError::bad_input(
            "password",
            "this password is among the most common ones; choose another",
        ));
    }
    Ok(())
}

/// A new opaque session token: 256 random bits, base64url.
pub fn new_token() -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| ApiError::internal(&err))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a token: its SHA-256.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The throttling key of an account: a hash of the normalised email, so that the attempt log
/// does not collect addresses.
pub fn account_key(email: &str) -> String {
    hex::encode(Sha256::digest(accounts::normalize_email(email).as_bytes()))
}

/// An authenticated session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: Uuid,
    pub user: user::Model,
    pub actor: Actor,
    pub expires_at: DateTime<Utc>,
    /// The stored last activity is more than a minute old: [`keep_alive`] writes it.
    pub keep_alive_due: bool,
}

/// When a session ends, given its start and last activity.
pub fn session_expiry(
    config: &AuthConfig,
    created_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
) -> DateTime<Utc> {
    (last_seen_at + config.idle_timeout).min(created_at + config.absolute_timeout)
}

/// Resolves a bearer token, reading through `reads` (a request's read view, or the pool).
/// `Ok(None)` when no token was sent; UNAUTHENTICATED for an unknown, expired or revoked token
/// or a disabled user. Writes nothing: the caller then runs [`keep_alive`].
pub async fn resolve_session<R: Reader>(
    reads: &R,
    config: &AuthConfig,
    now: DateTime<Utc>,
    token: Option<&str>,
) -> ApiResult<Option<Session>> {
    let Some(token) = token else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            Code::Unauthenticated,
            "the session is invalid or has expired",
        )
    };
    let Some((session, owner, grants)) = accounts::find_session(reads, &token_hash(token)).await?
    else {
        return Err(invalid());
    };
    let expires_at = session_expiry(config, session.created_at, session.last_seen_at);
    if session.revoked_at.is_some()
        || owner.disabled
        || now >= expires_at
        || now >= session.expires_at
    {
        return Err(invalid());
    }
    let actor = Actor::user(owner.id.into(), grants.iter().map(|g| g.grant));
    Ok(Some(Session {
        id: session.id,
        expires_at: session_expiry(config, session.created_at, now.max(session.last_seen_at)),
        user: owner,
        actor,
        keep_alive_due: now - session.last_seen_at > Duration::seconds(60),
    }))
}

/// Records a resolved session's activity, keeping its idle window open: at most once a
/// minute, so that requests do not each write. Over HTTP it runs once the request's reads
/// have ended (`rkflow_store::reads`).
pub async fn keep_alive(db: &Db, session: &Session, now: DateTime<Utc>) -> ApiResult<()> {
    if session.keep_alive_due {
        accounts::touch_session(&db.conn, session.id, now).await?;
    }
    Ok(())
}

/// Checks a logged-in user's current password (before a password change) under the login
/// throttle of the account: a wrong one counts and is audited as a failed login, so a stolen
/// session cannot guess the password faster than logins could. BAD_USER_INPUT on
/// `currentPassword` when wrong, TOO_MANY_REQUESTS when throttled.
pub async fn verify_current_password(
    db: &Db,
    config: &AuthConfig,
    passwords: &Passwords,
    origin: &Origin,
    now: DateTime<Utc>,
    user: &user::Model,
    password: &str,
) -> ApiResult<()> {
    let key = account_key(&user.email);
    let reservation = reserve_attempt(
        db,
        config,
        origin,
        now,
        &key,
        "too many failed password checks; wait a few minutes and try again",
    )
    .await?;
    let (matches, _) = passwords
        .verify(Some(user.password_hash.clone()), password)
        .await?;
    if !matches {
        accounts::record_failed_login(
            db,
            origin,
            now,
            &key,
            "wrong current password",
            Some(reservation),
        )
        .await?;
        return Err(ApiError::bad_input(
            "currentPassword",
            "the current password is not correct",
        ));
    }
    accounts::release_login_attempt(&db.conn, reservation).await?;
    Ok(())
}

/// Reserves one password attempt against the throttle (recorded as a failure until it is
/// released), or records the throttled attempt and answers TOO_MANY_REQUESTS.
async fn reserve_attempt(
    db: &Db,
    config: &AuthConfig,
    origin: &Origin,
    now: DateTime<Utc>,
    key: &str,
    throttled: &str,
) -> ApiResult<i64> {
    let reservation = accounts::reserve_login_attempt(
        db,
        origin,
        now,
        key,
        now - config.throttle_window,
        config.max_failures_per_account,
        config.max_failures_per_client,
    )
    .await?;
    match reservation {
        Some(reservation) => Ok(reservation),
        None => {
            accounts::record_failed_login(db, origin, now, key, "throttled", None).await?;
            Err(ApiError::new(Code::TooManyRequests, throttled))
        }
    }
}

/// Logs in: throttle check, password verification (same answer and time for an unknown email
/// and a wrong password), rehash when the parameters rose, a new session.
pub async fn login(
    db: &Db,
    config: &AuthConfig,
    passwords: &Passwords,
    origin: &Origin,
    now: DateTime<Utc>,
    email: &str,
    password: &str,
) -> ApiResult<(String, DateTime<Utc>, user::Model)> {
    let key = account_key(email);
    let reservation = reserve_attempt(
        db,
        config,
        origin,
        now,
        &key,
        "too many failed logins; wait a few minutes and try again",
    )
    .await?;
    let found = if password.chars().count() > MAX_PASSWORD_CHARS {
        None
    } else {
        accounts::find_user_by_email(&db.conn, email).await?
    };
    let (matches, needs_rehash) = passwords
        .verify(found.as_ref().map(|u| u.password_hash.clone()), password)
        .await?;
    let user = match found {
        Some(user) if matches && !user.disabled => user,
        other => {
            let reason = match other {
                None => "unknown account",
                Some(user) if user.disabled => "disabled account",
                Some(_) => "wrong password",
            };
            accounts::record_failed_login(db, origin, now, &key, reason, Some(reservation)).await?;
            return Err(ApiError::new(
                Code::Unauthenticated,
                "the email address or password is not correct",
            ));
        }
    };
    let origin = Origin {
        actor: Some(user.id),
        client: origin.client.clone(),
    };
    if needs_rehash {
        let rehashed = passwords.hash(password).await?;
        accounts::replace_password_hash(db, &origin, now, user.id, &rehashed).await?;
    }
    let token = new_token()?;
    let expires_at = now + config.absolute_timeout;
    accounts::create_session(
        db,
        &origin,
        now,
        user.id,
        &token_hash(&token),
        expires_at,
        &key,
    )
    .await?;
    accounts::release_login_attempt(&db.conn, reservation).await?;
    Ok((token, session_expiry(config, now, now), user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    #[test]
    fn password_hashing_takes_at_most_half_the_cores() {
        assert_eq!(hashes_at_once(1), 1);
        assert_eq!(hashes_at_once(2), 1);
        assert_eq!(hashes_at_once(3), 1);
        assert_eq!(hashes_at_once(4), 2);
        assert_eq!(hashes_at_once(16), 8);
    }

    fn hash_with(params: Params, algorithm: Algorithm, password: &str) -> String {
        let salt = b"rkflow-test-salt";
        Argon2::new(algorithm, Version::V0x13, params)
            .hash_password_with_salt(password.as_bytes(), salt)
            .expect("hash")
            .to_string()
    }

    /// Hashes stored with other parameters or algorithms (older settings, imported accounts)
    /// still verify, and only with their own password.
    #[tokio::test]
    async fn verifies_hashes_of_other_parameters_and_algorithms() {
        let passwords = Passwords::new(&AuthConfig::default()).expect("parameters");
        let cases = [
            (
                Params::new(19_456, 2, 1, None).expect("params"),
                Algorithm::Argon2id,
            ),
            (
                Params::new(8_192, 3, 1, None).expect("params"),
                Algorithm::Argon2id,
            ),
            (
                Params::new(8_192, 2, 2, Some(24)).expect("params"),
                Algorithm::Argon2i,
            ),
        ];
        for (params, algorithm) in cases {
            let stored = hash_with(params, algorithm, "juist wachtwoord");
            let verify = |password: &'static str| passwords.verify(Some(stored.clone()), password);
            assert!(verify("juist wachtwoord").await.expect("verify").0);
            assert!(!verify("juist wachtwoorD").await.expect("verify").0);
            assert!(!verify("").await.expect("verify").0);
        }
        let garbled = "$argon2id$v=19$m=8192,t=2,p=1$c2FsdHNhbHQ$".to_string();
        assert_eq!(
            passwords.verify(Some(garbled), "x").await.expect("verify"),
            (false, false)
        );
    }

    /// Hashed in kept working memory, a hash is argon2's own: the crate's verifier accepts it,
    /// with its password only. One buffer serves hash after hash; one grown for a stored hash
    /// of larger parameters is not kept.
    #[tokio::test]
    async fn hashes_in_kept_memory_are_argon2s_own() {
        let mut passwords = Passwords::new(&AuthConfig::default()).expect("parameters");
        // Kept throughout, however slowly the test runs (the release: below).
        passwords.memory = WorkingMemory::new(std::time::Duration::from_secs(600));
        let kept = || passwords.memory.kept_sizes();
        let own = passwords.params.block_count();
        let first = passwords.hash("een goed wachtwoord").await.expect("hash");
        let second = passwords.hash("een goed wachtwoord").await.expect("hash");
        assert_ne!(first, second, "a fresh salt each time");
        assert_eq!(kept(), vec![own]);
        for stored in [&first, &second] {
            let parsed = PasswordHash::new(stored).expect("a PHC string");
            assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
            let params = Params::try_from(&parsed).expect("params");
            assert_eq!(
                (params.m_cost(), params.t_cost(), params.p_cost()),
                (
                    passwords.params.m_cost(),
                    passwords.params.t_cost(),
                    passwords.params.p_cost()
                )
            );
            assert_eq!(params.output_len(), Some(Params::DEFAULT_OUTPUT_LEN));
            let crate_verifies = |password: &str| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            };
            assert!(crate_verifies("een goed wachtwoord"));
            assert!(!crate_verifies("een goed wachtwoorD"));
            let verify = |password: &'static str| passwords.verify(Some(stored.clone()), password);
            assert_eq!(
                verify("een goed wachtwoord").await.expect("verify"),
                (true, false)
            );
            assert_eq!(
                verify("een goed wachtwoorD").await.expect("verify"),
                (false, false)
            );
        }
        assert_eq!(kept(), vec![own]);
        let larger = hash_with(
            Params::new(19_456, 2, 1, None).expect("params"),
            Algorithm::Argon2id,
            "een ouder wachtwoord",
        );
        assert_eq!(
            passwords
                .verify(Some(larger), "een ouder wachtwoord")
                .await
                .expect("verify"),
            (true, true)
        );
        assert_eq!(kept(), Vec::<usize>::new());
        passwords.hash("weer een wachtwoord").await.expect("hash");
        assert_eq!(kept(), vec![own]);
    }

    /// What is kept is freed once no hash has given memory back for the time it is kept for;
    /// a hash in between puts the release off.
    #[tokio::test]
    async fn kept_working_memory_is_freed_when_logins_stop() {
        let mut passwords = Passwords::new(&AuthConfig::default()).expect("parameters");
        let kept_for = std::time::Duration::from_millis(300);
        passwords.memory = WorkingMemory::new(kept_for);
        let own = passwords.params.block_count();
        passwords.hash("een goed wachtwoord").await.expect("hash");
        assert_eq!(passwords.memory.kept_sizes(), vec![own]);
        tokio::time::sleep(kept_for / 2).await;
        passwords.hash("een goed wachtwoord").await.expect("hash");
        tokio::time::sleep(kept_for / 2).await;
        assert_eq!(passwords.memory.kept_sizes(), vec![own], "put off");
        tokio::time::sleep(kept_for * 3).await;
        assert_eq!(passwords.memory.kept_sizes(), Vec::<usize>::new());
    }

    /// Every OWASP row and anything stronger in both costs passes; one step below a row in
    /// memory or iterations, without reaching another row, does not.
    #[test]
    fn argon2_settings_must_reach_an_owasp_row() {
        for (memory, iterations) in ARGON2_OWASP_SETTINGS {
            assert!(argon2_meets_owasp(memory, iterations));
            assert!(argon2_meets_owasp(memory + 1024, iterations + 1));
        }
        assert!(argon2_meets_owasp(
            DEFAULT_ARGON2_MEMORY_KIB,
            DEFAULT_ARGON2_ITERATIONS
        ));
        for (memory, iterations) in [
            (47_103, 1),
            (19_455, 2),
            (12_287, 3),
            (19_456, 1),
            (12_288, 2),
            (9_215, 4),
            (7_168, 4),
            (7_167, 100),
            (1_024, 1),
        ] {
            assert!(
                !argon2_meets_owasp(memory, iterations),
                "{memory} KiB, {iterations} iterations"
            );
        }
    }

    /// Hashes of the former default (19 MiB, 2 iterations) are rehashed to the configured
    /// setting at the next login, as are weaker ones; hashes of the configured setting are not.
    #[tokio::test]
    async fn rehashes_what_differs_from_the_configured_setting_downwards() {
        let passwords = Passwords::new(&AuthConfig::default()).expect("parameters");
        let password = "juist wachtwoord";
        let stored = |m, t| {
            hash_with(
                Params::new(m, t, 1, None).expect("params"),
                Algorithm::Argon2id,
                password,
            )
        };
        for (m, t, rehash) in [
            (19_456, 2, true),
            (8_192, 3, true),
            (DEFAULT_ARGON2_MEMORY_KIB, DEFAULT_ARGON2_ITERATIONS, false),
            (
                DEFAULT_ARGON2_MEMORY_KIB * 2,
                DEFAULT_ARGON2_ITERATIONS,
                false,
            ),
        ] {
            assert_eq!(
                passwords
                    .verify(Some(stored(m, t)), password)
                    .await
                    .expect("verify"),
                (true, rehash),
                "{m} KiB, {t} iterations"
            );
        }
    }
}
