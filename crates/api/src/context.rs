//! Shared state (one per server) and request context (one per request), and the per-request
//! DataLoaders that batch database reads.

use crate::auth::{AuthConfig, Passwords, Session};
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rkflow_domain::Actor;
use rkflow_domain::role::StoredGrant;
use rkflow_store::accounts::UserCard;
use rkflow_store::entity::municipality;
use rkflow_store::investigations::Loaded;
use rkflow_store::organisation::CommissionWithMunicipalities;
use rkflow_store::{Db, Origin, ReadView, accounts, investigations, organisation};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, Wake, Waker};
use std::time::Duration;
use uuid::Uuid;

pub use crate::events::EventBus;

/// Everything the resolvers share, for the life of the server.
#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub clock: Clock,
    pub auth: AuthConfig,
    pub passwords: Passwords,
    pub events: EventBus,
    /// How long before a deadline reminders go out (default 7 days and 1 day).
    pub reminder_offsets: Vec<chrono::Duration>,
    /// Told every login's outcome (the server's metrics).
    pub logins: crate::auth::LoginObserver,
}

/// Who is asking, and from where.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub session: Option<Session>,
    /// The client address.
    pub client: Option<String>,
    /// Identifies the request in logs.
    pub request_id: String,
    /// Confidential content read during this request, audited when the request ends.
    pub reads: ReadLog,
}

/// The (investigation, version) pairs whose content a request returned.
#[derive(Clone, Debug, Default)]
pub struct ReadLog(Arc<std::sync::Mutex<Vec<(Uuid, Uuid)>>>);

impl ReadLog {
    pub fn record(&self, investigation: Uuid, version: Uuid) {
        if let Ok(mut reads) = self.0.lock() {
            reads.push((investigation, version));
        }
    }

    /// Writes one `document.read` audit event per investigation read, in one transaction.
    pub async fn flush(&self, state: &ApiState, origin: &Origin) -> ApiResult<()> {
        let reads = match self.0.lock() {
            Ok(mut reads) => std::mem::take(&mut *reads),
            Err(_) => return Ok(()),
        };
        let mut by_investigation: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
        for (investigation, version) in reads {
            let versions = by_investigation.entry(investigation).or_default();
            if !versions.contains(&version) {
                versions.push(version);
            }
        }
        for (investigation, versions) in by_investigation {
            investigations::record_read(
                &state.db,
                origin,
                state.clock.now(),
                investigation,
                &versions,
                "graphql",
            )
            .await?;
        }
        Ok(())
    }
}

impl RequestContext {
    pub fn actor(&self) -> Actor {
        self.session
            .as_ref()
            .map(|s| s.actor.clone())
            .unwrap_or_else(Actor::anonymous)
    }

    pub fn origin(&self) -> Origin {
        Origin {
            actor: self.session.as_ref().map(|s| s.user.id),
            client: self.client.clone(),
        }
    }
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a ApiState {
    ctx.data_unchecked::<ApiState>()
}

pub fn request<'a>(ctx: &Context<'a>) -> &'a RequestContext {
    ctx.data_unchecked::<RequestContext>()
}

/// The session, or UNAUTHENTICATED.
pub fn session<'a>(ctx: &Context<'a>) -> ApiResult<&'a Session> {
    request(ctx)
        .session
        .as_ref()
        .ok_or_else(ApiError::unauthenticated)
}

/// A loader's failure: logged here, handed to the fields that waited for it as INTERNAL
/// ([`load_failed`]).
fn loader_error(err: rkflow_store::StoreError) -> Arc<String> {
    tracing::error!(error = %err, "loader failed");
    Arc::new("load failed".to_string())
}

macro_rules! batch_loader {
    ($(#[$doc:meta])* $name:ident, $value:ty, |$db:ident, $keys:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name(pub Arc<ReadView>);

        impl Loader<Uuid> for $name {
            type Value = $value;
            type Error = Arc<String>;

            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
                let $db: &ReadView = &self.0;
                let $keys = keys;
                let result: Result<HashMap<Uuid, Self::Value>, rkflow_store::StoreError> =
                    async { $body }.await;
                result.map_err(loader_error)
            }
        }
    };
}

batch_loader!(
    /// Investigations with everything the rules need, a fixed number of statements per batch.
    InvestigationLoader,
    Arc<Loaded>,
    |db, keys| Ok(investigations::load_many(db, keys)
        .await?
        .into_iter()
        .map(|l| (l.id(), l))
        .collect())
);
/// The values a request has read, by id: the first place its loader looks, and what plain
/// fields (`crate::plain`) answer from without waiting. Hashed with foldhash, not std's SipHash:
/// a dashboard looks up some 250 authors and feeds some 130 commissions and municipalities,
/// and SipHash was a twentieth of its instructions; the keys are ids the server made, and
/// foldhash is seeded per process all the same.
type Known<V> = Arc<std::sync::Mutex<KnownMap<V>>>;
type KnownMap<V> = HashMap<Uuid, V, foldhash::fast::RandomState>;

fn lock<V>(known: &Known<V>) -> std::sync::MutexGuard<'_, KnownMap<V>> {
    known
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A loader that keeps what the request has read ([`Known`]): a key it holds is not read
/// again, and values fed to it up front (a page's users, the commissions read with the
/// investigations) are there for the loader and the plain fields alike.
macro_rules! known_first_loader {
    ($(#[$doc:meta])* $name:ident, $value:ty, |$db:ident, $keys:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name {
            view: Arc<ReadView>,
            known: Known<$value>,
        }

        impl $name {
            fn new(view: Arc<ReadView>) -> $name {
                $name {
                    view,
                    known: Known::default(),
                }
            }

            /// Reads the values of `ids` it does not hold yet, in one statement, and keeps them.
            async fn read_missing(&self, ids: &[Uuid]) -> Result<(), rkflow_store::StoreError> {
                let missing: Vec<Uuid> = {
                    let known = lock(&self.known);
                    ids.iter()
                        .copied()
                        .filter(|id| !known.contains_key(id))
                        .collect()
                };
                if !missing.is_empty() {
                    let $db: &ReadView = &self.view;
                    let $keys = &missing[..];
                    let read: Result<Vec<(Uuid, $value)>, rkflow_store::StoreError> =
                        async { $body }.await;
                    lock(&self.known).extend(read?);
                }
                Ok(())
            }

            /// The values of `ids`: those it holds, the rest read in one statement and kept.
            async fn read(
                &self,
                ids: &[Uuid],
            ) -> Result<HashMap<Uuid, $value>, rkflow_store::StoreError> {
                self.read_missing(ids).await?;
                let known = lock(&self.known);
                Ok(ids
                    .iter()
                    .filter_map(|id| known.get(id).map(|value| (*id, value.clone())))
                    .collect())
            }

            /// The value of `id`, when read or fed already.
            fn known(&self, id: Uuid) -> Option<$value> {
                lock(&self.known).get(&id).cloned()
            }

            /// Values read elsewhere (users are only ever read by the loader itself).
            #[allow(dead_code)]
            fn feed(&self, values: impl IntoIterator<Item = (Uuid, $value)>) {
                lock(&self.known).extend(values);
            }
        }

        impl Loader<Uuid> for $name {
            type Value = $value;
            type Error = Arc<String>;

            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
                self.read(keys).await.map_err(loader_error)
            }
        }
    };
}

known_first_loader!(
    /// Users as others see them (cards).
    UserLoader,
    Arc<UserCard>,
    |db, keys| Ok(accounts::find_user_cards(db, keys)
        .await?
        .into_iter()
        .map(|u| (u.id, Arc::new(u)))
        .collect())
);
known_first_loader!(
    CommissionLoader,
    CommissionWithMunicipalities,
    |db, keys| Ok(organisation::commissions_by_ids(db, keys)
        .await?
        .into_iter()
        .map(|c| (c.commission.id, c))
        .collect())
);
known_first_loader!(MunicipalityLoader, municipality::Model, |db, keys| Ok(
    organisation::municipalities_by_ids(db, keys)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect()
));
batch_loader!(
    /// Markdown text of versions.
    MarkdownLoader,
    String,
    |db, keys| investigations::markdown_bodies(db, keys).await
);
batch_loader!(
    /// Role grants per user.
    GrantLoader,
    StoredGrantList,
    |db, keys| {
        let mut by_user: HashMap<Uuid, StoredGrantList> =
            keys.iter().map(|k| (*k, StoredGrantList::default())).collect();
        for (user, grant) in accounts::grants_of_users(db, keys).await? {
            by_user.entry(user).or_default().0.push(grant);
        }
        Ok(by_user)
    }
);

/// The per-request loaders, reading through the request's [`ReadView`]; the server inserts
/// them into each request's data.
pub struct Loaders {
    /// Where the request reads (a GraphQL query: one read transaction).
    pub view: Arc<ReadView>,
    pub investigations: DataLoader<InvestigationLoader>,
    pub users: DataLoader<UserLoader, HashMapCache>,
    pub commissions: DataLoader<CommissionLoader, HashMapCache>,
    pub municipalities: DataLoader<MunicipalityLoader, HashMapCache>,
    pub markdown: DataLoader<MarkdownLoader>,
    pub grants: DataLoader<GrantLoader>,
}

impl Loaders {
    /// Loads started by the request's own task: the server runs the execution through
    /// [`LoadQueue::execute`] (HTTP). Users, commissions and municipalities are cached for the
    /// request, so that a list can load them once for all its nodes up front
    /// (`query::prime_loaders`).
    pub fn driven(view: Arc<ReadView>) -> (Loaders, Arc<LoadQueue>) {
        let queue = Arc::new(LoadQueue::default());
        let spawner = {
            let queue = queue.clone();
            move |load: BoxFuture<'static, ()>| queue.push(load)
        };
        (Loaders::with(view, spawner, Duration::ZERO), queue)
    }

    /// Loads spawned on the runtime, each after async-graphql's default wait of 1 ms for more
    /// keys (WebSocket subscriptions, whose execution the server does not drive itself).
    pub fn spawned(view: Arc<ReadView>) -> Loaders {
        let spawner = |load: BoxFuture<'static, ()>| {
            tokio::spawn(load);
        };
        Loaders::with(view, spawner, Duration::from_millis(1))
    }

    fn with(
        view: Arc<ReadView>,
        spawner: impl Fn(BoxFuture<'static, ()>) + Clone + Send + Sync + 'static,
        delay: Duration,
    ) -> Loaders {
        Loaders {
            investigations: DataLoader::new(InvestigationLoader(view.clone()), spawner.clone())
                .delay(delay),
            users: DataLoader::with_cache(
                UserLoader::new(view.clone()),
                spawner.clone(),
                HashMapCache::default(),
            )
            .delay(delay),
            commissions: DataLoader::with_cache(
                CommissionLoader::new(view.clone()),
                spawner.clone(),
                HashMapCache::default(),
            )
            .delay(delay),
            municipalities: DataLoader::with_cache(
                MunicipalityLoader::new(view.clone()),
                spawner.clone(),
                HashMapCache::default(),
            )
            .delay(delay),
            markdown: DataLoader::new(MarkdownLoader(view.clone()), spawner.clone()).delay(delay),
            grants: DataLoader::new(GrantLoader(view.clone()), spawner).delay(delay),
            view,
        }
    }

    /// Reads the users of `ids` in one statement (none when all are read already), for
    /// [`Loaders::known_user`] and the user loader: a page's users up front
    /// (`query::prime_loaders`).
    pub async fn read_users(&self, ids: &[Uuid]) -> ApiResult<()> {
        self.users
            .loader()
            .read_missing(ids)
            .await
            .map_err(ApiError::from)
    }

    /// Hands the commissions read with investigations, and their municipalities, to their
    /// loaders (which then read them no more) and to [`Loaders::known_commission`] and
    /// [`Loaders::known_municipality`].
    pub fn feed_commissions(
        &self,
        commissions: Vec<(Uuid, CommissionWithMunicipalities)>,
        municipalities: Vec<(Uuid, municipality::Model)>,
    ) {
        self.commissions.loader().feed(commissions);
        self.municipalities.loader().feed(municipalities);
    }

    /// A user read so far in this request (up front by [`Loaders::read_users`], or by the
    /// user loader).
    pub fn known_user(&self, id: Uuid) -> Option<Arc<UserCard>> {
        self.users.loader().known(id)
    }

    /// A commission fed up front ([`Loaders::feed_commissions`]) or loaded.
    pub fn known_commission(&self, id: Uuid) -> Option<CommissionWithMunicipalities> {
        self.commissions.loader().known(id)
    }

    /// A municipality fed up front ([`Loaders::feed_commissions`]) or loaded.
    pub fn known_municipality(&self, id: Uuid) -> Option<municipality::Model> {
        self.municipalities.loader().known(id)
    }
}

/// The loads of one request, run by the request's own task rather than spawned.
///
/// async-graphql resolves all fields of an answer in one task; a field that asks a loader for
/// a key queues the load and waits. [`LoadQueue::execute`] polls the execution and then the
/// loads, and starts the queued loads only when the execution has come to a halt — returned
/// `Pending` without waking itself. (Its joins of many fields yield after every 32, waking
/// themselves; a batch started then would miss the keys of the fields not yet polled, which
/// would become a second batch.) So every key the fields ask for until the answer waits is in
/// one batch per loader, with no wait (async-graphql's default 1 ms delay per round of loads)
/// and no other thread involved.
#[derive(Default)]
pub struct LoadQueue {
    queued: std::sync::Mutex<Vec<BoxFuture<'static, ()>>>,
}

impl LoadQueue {
    fn push(&self, load: BoxFuture<'static, ()>) {
        if let Ok(mut queued) = self.queued.lock() {
            queued.push(load);
        }
    }

    /// Runs `execution` to its end, and the loads it queues meanwhile.
    pub async fn execute<F: Future>(&self, execution: F) -> F::Output {
        let mut execution = std::pin::pin!(execution);
        let mut running = FuturesUnordered::new();
        let wake = Arc::new(SelfWake::default());
        let waker = Waker::from(wake.clone());
        std::future::poll_fn(|cx| {
            wake.watch(cx.waker());
            if let Poll::Ready(output) = execution
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
            {
                return Poll::Ready(output);
            }
            if !wake.woken.swap(false, Ordering::AcqRel)
                && let Ok(mut queued) = self.queued.lock()
            {
                running.extend(queued.drain(..));
            }
            // Until each running load waits (or FuturesUnordered yields, waking the task).
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
            Poll::Pending
        })
        .await
    }
}

/// The execution's waker: notes that it was woken, and wakes the request's task.
#[derive(Default)]
struct SelfWake {
    woken: AtomicBool,
    task: std::sync::Mutex<Option<Waker>>,
}

impl SelfWake {
    fn watch(&self, task: &Waker) {
        self.woken.store(false, Ordering::Release);
        if let Ok(mut current) = self.task.lock()
            && !current.as_ref().is_some_and(|w| w.will_wake(task))
        {
            *current = Some(task.clone());
        }
    }
}

impl Wake for SelfWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Ok(task) = self.task.lock()
            && let Some(task) = task.as_ref()
        {
            task.wake_by_ref();
        }
    }
}

pub fn loaders<'a>(ctx: &Context<'a>) -> &'a Loaders {
    ctx.data_unchecked::<Loaders>()
}

/// Where this request reads: resolvers read through it, never through the pool directly
/// (see `rkflow_store::reads` for why).
pub fn view<'a>(ctx: &Context<'a>) -> &'a ReadView {
    &loaders(ctx).view
}

/// Maps a loader failure to INTERNAL.
pub fn load_failed(err: Arc<String>) -> ApiError {
    ApiError::internal(&err)
}

/// A user's grants (a loader value).
#[derive(Clone, Debug, Default)]
pub struct StoredGrantList(pub Vec<StoredGrant>);
