//! `opencti serve FILE`: the gateway for every agent of a deployment file, on one link
//! to its phone system, with agents signing in by id and password.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use opencti_core::queue::{QueueBoard, QueueStats, DEFAULT_THRESHOLD};
use opencti_core::{
    AgentId, DeviceId, Error, ErrorKind, QueueId, Result, Session, SessionBuilder, SharedLink,
    Timestamp,
};
use opencti_gateway::{
    AgentLine, Crm, Gateway, Grant, Limits, NatsTokenLimits, NatsTokens, NoCrm, Security,
    SessionFactory, SignIn, SimSessions, SqliteCrm, Tls, TokenStore, TokenTable,
};

use opencti_nats::RemoteQueues;

use crate::deployment::{Deployment, PhoneAnswers, PhoneSystem, SignedIn};

/// How long a sign-in's token lasts: a working day and a half.
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Options of `opencti serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The deployment file (see `examples/deployments/`).
    file: PathBuf,
    #[command(flatten)]
    nats: crate::nats::NatsArgs,
    /// Log sign-ins, session starts, refusals and link changes on standard error, at
    /// this level and above: error, warn, info, debug or trace (default: no log).
    #[arg(long, value_name = "LEVEL")]
    log: Option<tracing::Level>,
}

/// The deployment's agents, checking passwords against their hashes.
struct Agents(Arc<Deployment>);

impl SignIn for Agents {
    fn sign_in(&self, agent: &str, password: &str) -> Option<Grant> {
        match self.0.sign_in(agent, password)? {
            SignedIn::Agent(found) => Some(Grant::agent(
                AgentId::new(found.id.get_ref()).ok()?,
                DeviceId::new(found.device.get_ref()).ok()?,
            )),
            SignedIn::Supervisor(found) => Some(Grant::supervisor(
                AgentId::new(found.id.get_ref()).ok()?,
                DeviceId::new(found.device.get_ref()).ok()?,
            )),
        }
    }
}

/// Sessions on one shared link to the phone system.
struct LinkSessions(SharedLink);

/// Sessions on one AMI link to Asterisk, where supervisors can also listen in.
struct AsteriskSessions {
    sessions: LinkSessions,
    ami: opencti_asterisk_ami::AmiLink,
}

#[async_trait::async_trait]
impl SessionFactory for AsteriskSessions {
    async fn start(&self, grant: &Grant) -> Result<AgentLine> {
        self.sessions.start(grant).await
    }

    fn can_monitor(&self) -> bool {
        true
    }

    async fn monitor(
        &self,
        supervisor: &Grant,
        agent: &opencti_core::Snapshot,
        mode: opencti_core::MonitorMode,
    ) -> Result<()> {
        self.ami
            .monitor(&supervisor.device, &agent.device, mode)
            .await
    }
}

#[async_trait::async_trait]
impl SessionFactory for LinkSessions {
    async fn start(&self, grant: &Grant) -> Result<AgentLine> {
        let session = self
            .0
            .session(grant.agent.clone(), grant.device.clone())
            .start()
            .await?;
        Ok(Arc::new(session))
    }
}

/// The queues each agent of the deployment belongs to.
fn agents_queues(deployment: &Deployment) -> Result<HashMap<AgentId, Vec<QueueId>>> {
    let mut members = HashMap::new();
    for agent in &deployment.agents {
        let queues = agent
            .queues
            .iter()
            .map(|q| QueueId::new(q.get_ref()))
            .collect::<Result<Vec<_>>>()?;
        members.insert(AgentId::new(agent.id.get_ref())?, queues);
    }
    Ok(members)
}

/// Each line's session on the shared `link`.
fn line_builder(link: &SharedLink) -> LineBuilder {
    let link = link.clone();
    Arc::new(move |agent, device| link.session(agent, device))
}

fn config_error(message: String) -> Error {
    Error::new(ErrorKind::Config, message)
}

/// Every queue any agent works in.
fn all_queues(deployment: &Deployment) -> Vec<String> {
    let mut queues: Vec<String> = deployment
        .agents
        .iter()
        .flat_map(|a| a.queues.iter().map(|q| q.get_ref().clone()))
        .collect();
    queues.sort();
    queues.dedup();
    queues
}

/// A queue board for the deployment's queues, its counts starting `now`.
fn queue_board(deployment: &Deployment, now: Timestamp) -> Result<QueueBoard> {
    let mut stats = QueueStats::new(now);
    for queue in all_queues(deployment) {
        stats = stats.with_queue(QueueId::new(queue)?, DEFAULT_THRESHOLD);
    }
    Ok(QueueBoard::new(stats, now))
}

/// Starts building one line's session on the deployment's phone system.
pub(crate) type LineBuilder = Arc<dyn Fn(AgentId, DeviceId) -> SessionBuilder + Send + Sync>;

/// The sessions over the deployment's phone system, and its queue figures where the
/// phone system reports its queues.
pub(crate) async fn sessions(
    deployment: &Deployment,
) -> Result<(Arc<dyn SessionFactory>, Option<QueueBoard>)> {
    let (sessions, board, _) = phone_system(deployment).await?;
    Ok((sessions, board))
}

/// The link to the deployment's phone system: sessions for the gateway, its queue
/// figures where it reports its queues, and a builder for each line's session.
pub(crate) async fn phone_system(
    deployment: &Deployment,
) -> Result<(Arc<dyn SessionFactory>, Option<QueueBoard>, LineBuilder)> {
    match &deployment.phone_system {
        PhoneSystem::Simulator => {
            // Call ids no earlier run used: the call log keeps every run's calls.
            let mut builder = opencti_sim::SimSwitch::builder()
                .call_ids(&opencti_sim::CentreConfig::unique_call_ids());
            for queue in all_queues(deployment) {
                builder = builder.queue(&queue);
            }
            for agent in &deployment.agents {
                let queues: Vec<&str> = agent.queues.iter().map(|q| q.get_ref().as_str()).collect();
                builder = builder.agent(agent.id.get_ref(), agent.device.get_ref(), &queues);
            }
            let switch = builder.build()?;
            let board = queue_board(deployment, switch.now())?;
            board.feed_stamped(switch.queue_events());
            let builder: LineBuilder = {
                let switch = switch.clone();
                Arc::new(move |agent, device: DeviceId| {
                    Session::builder(Arc::new(switch.connector(device.clone())), agent, device)
                })
            };
            Ok((Arc::new(SimSessions::new(switch)), Some(board), builder))
        }
        PhoneSystem::Asterisk {
            address,
            username,
            secret_file,
            tls_ca_file,
            outbound_context,
            answer,
            conference_context,
        } => {
            let secret = opencti_asterisk_ami::secret_from_file(deployment.resolve(secret_file))?;
            let mut config = opencti_asterisk_ami::AmiConfig::new(address, username, secret);
            if let Some(context) = outbound_context {
                config.outbound_context = context.clone();
            }
            config.conference_context = conference_context.clone();
            config.answer = match answer {
                PhoneAnswers::ByHand => opencti_asterisk_ami::AnswerMode::ByHand,
                PhoneAnswers::PhoneAnswersItself => {
                    opencti_asterisk_ami::AnswerMode::PhoneAnswersItself
                }
            };
            if let Some(ca) = tls_ca_file {
                config.tls = Some(opencti_asterisk_ami::TlsConfig {
                    ca_file: Some(deployment.resolve(ca)),
                    system_roots: false,
                    server_name: None,
                });
            }
            // One AMI link serves every agent, each in the queues the file gives it, and
            // follows Asterisk's queues for the wallboard.
            let board = queue_board(deployment, Timestamp::now())?;
            let link = opencti_asterisk_ami::AmiLink::new(config)?.with_queue_board(board.clone());
            for agent in &deployment.agents {
                let queues = agent.queues.iter().map(|q| q.get_ref().clone()).collect();
                link.set_queues(&DeviceId::new(agent.device.get_ref())?, queues)?;
            }
            let ami = link.clone();
            let link = SharedLink::start(Arc::new(link)).await?;
            let builder = line_builder(&link);
            let sessions = AsteriskSessions {
                sessions: LinkSessions(link),
                ami,
            };
            Ok((Arc::new(sessions), Some(board), builder))
        }
        PhoneSystem::Sip { registrar, domain } => {
            let registrar = registrar.parse().map_err(|_| {
                config_error(format!(
                    "phone_system.registrar {registrar:?}: expected an IP address and port"
                ))
            })?;
            let password = |agent: &crate::deployment::Agent| -> Result<opencti_sip::Secret> {
                let file = agent.sip_password_file.as_ref().ok_or_else(|| {
                    config_error(format!(
                        "agent {}: no sip_password_file",
                        agent.id.get_ref()
                    ))
                })?;
                opencti_sip::password_from_file(deployment.resolve(file))
            };
            let Some(first) = deployment.agents.first() else {
                return Err(config_error("no agent".into()));
            };
            let mut config =
                opencti_sip::SipConfig::new(registrar, first.device.get_ref(), password(first)?);
            config.domain = domain.clone();
            let link = opencti_sip::SipLink::new(config)?;
            for agent in deployment.agents.iter().skip(1) {
                let account =
                    opencti_sip::SipAccount::new(agent.device.get_ref(), password(agent)?);
                link.add_account(DeviceId::new(agent.device.get_ref())?, account)?;
            }
            let link = SharedLink::start(Arc::new(link)).await?;
            let builder = line_builder(&link);
            // A registrar knows nothing of queues: no queue figures.
            Ok((Arc::new(LinkSessions(link)), None, builder))
        }
    }
}

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    if let Some(level) = args.log {
        crate::log::init(level);
    }
    let deployment = Deployment::load(&args.file).map_err(|e| config_error(e.to_string()))?;
    // Before anything connects to the phone system: a bad certificate or key stops here.
    let tls = match deployment.tls_files() {
        Some((certificate, key)) => Some(Tls::from_pem_files(certificate, key).map_err(|e| {
            config_error(format!("{}: listen: {}", args.file.display(), e.message()))
        })?),
        None => None,
    };
    let mut security = Security::default();
    for origin in &deployment.listen.allowed_origins {
        security = security.allow_origin(origin.get_ref())?;
    }
    for origin in &deployment.listen.frame_ancestors {
        security = security.frame_ancestor(origin.get_ref())?;
    }
    let crm: Arc<dyn Crm> = match &deployment.crm.sqlite {
        Some(path) => Arc::new(SqliteCrm::open(deployment.resolve(path))?),
        None => Arc::new(NoCrm),
    };
    let (sessions, board, tokens, remote_queues): (_, _, Arc<dyn TokenStore>, _) = match &args
        .nats
        .nats
    {
        // The phone system is the link service's: the sessions are reached through
        // NATS, sign-ins are shared with the site's other gateways there, and the
        // queues' figures are the link service's board, copied.
        Some(url) => {
            let (client, site) = crate::nats::connect(url, &args.nats.site).await?;
            let jetstream = opencti_nats::async_nats::jetstream::new(client.clone());
            let tokens = NatsTokens::open(&jetstream, &site, &NatsTokenLimits::default()).await?;
            let queues = RemoteQueues::open(&jetstream, &site, agents_queues(&deployment)?).await?;
            let lines: Arc<dyn SessionFactory> = Arc::new(crate::nats::NatsLines(
                opencti_nats::RemoteLines::new(client, site),
            ));
            (lines, None, Arc::new(tokens), Some(queues))
        }
        None => {
            let (sessions, board) = sessions(&deployment).await?;
            (sessions, board, Arc::new(TokenTable::new()), None)
        }
    };
    let listen = deployment
        .address()
        .ok_or_else(|| config_error("listen.address".into()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| config_error(format!("cannot listen on {listen}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::new(ErrorKind::Other, e.to_string()))?;
    let agents = deployment.agents.len();
    let supervisors = deployment.supervisors.len();
    let phone_system = deployment.phone_system.to_string();
    let mut limits = Limits::default();
    if let Some(max) = deployment.max_connections() {
        limits = limits.with_max_connections(max);
    }
    let mut gateway =
        Gateway::with_crm(tokens.clone(), sessions, limits, crm).with_security(security);
    if args.nats.nats.is_some() {
        // The site's link service writes the call log, once for every gateway.
        gateway = gateway.without_call_log();
    }
    if let Some(library) = &deployment.salesforce_voice.library {
        gateway = gateway.with_salesforce_voice_library(deployment.resolve(library))?;
    }
    if let Some(board) = board {
        gateway = gateway.with_queue_board(board);
    }
    if let Some(queues) = &remote_queues {
        gateway = gateway.with_queue_view(Arc::new(queues.mirror().clone()));
    }
    // Supervisors see every agent: each agent's session starts now, not at sign-in.
    if !deployment.supervisors.is_empty() {
        for agent in &deployment.agents {
            let grant = Grant::agent(
                AgentId::new(agent.id.get_ref())?,
                DeviceId::new(agent.device.get_ref())?,
            );
            if let Err(error) = gateway.session(&grant).await {
                tracing::warn!(agent = %grant.agent, %error, "the agent's session did not start; trying again every 2 s");
                // The phone system (or, on NATS, the link service) may not be up yet.
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if gateway.session(&grant).await.is_ok() {
                            tracing::info!(agent = %grant.agent, "the agent's session started");
                            return;
                        }
                    }
                });
            }
        }
    }
    let gateway = gateway.with_sign_in(
        Arc::new(Agents(Arc::new(deployment))),
        tokens,
        TOKEN_LIFETIME,
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("opencti serve: {agents} agents and {supervisors} supervisors on {phone_system}");
    println!("Sign in at {scheme}://{address}/sign-in. Ctrl-C stops.");
    let serving = async {
        match tls {
            Some(tls) => gateway.serve_tls(listener, tls).await,
            None => gateway.serve(listener).await,
        }
    };
    tokio::select! {
        served = serving => served.map_err(|e| Error::new(ErrorKind::Other, e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
