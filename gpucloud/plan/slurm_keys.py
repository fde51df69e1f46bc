"""The keys of slurm.conf and slurmdbd.conf as spec settings see them: which the plan owns, which hold secrets, and
which Slurm knows.

* Owned keys are written from another part of the spec (or by a role that creates what they name); a setting may not
  replace them, since the rest of the plan (topology, gres.conf, the roles, the diff) would no longer agree with the
  file. Each maps to the spec field or role that drives it, for the check's hint.
* Secret keys (passwords) stay references: slurm.accounting.database_password, never a value in a spec.
* Known keys: the PARAMETERS of slurm.conf(5) and slurmdbd.conf(5) of Slurm 22.05 (the Debian 12 packages the
  tests run), plus later releases' keys listed in ``NEWER``. An unknown key is a warning, not an error: Slurm adds
  keys every release and slurmctld itself refuses a key it does not know.
"""

from __future__ import annotations

import re

_CONTROLLERS = "the hosts of the pools with the 'slurm-controller' role"
_NODES = "node_pools: one NodeName line per compute pool, its hardware from the pool's model"
_ROLE_PATH = "the {role} role creates and watches this path ({var}); keep the plan's"

# slurm.conf key (lower case) -> (key as Slurm spells it, what drives it instead)
OWNED: dict[str, tuple[str, str]] = {k.lower(): (k, why) for k, why in (
    ("ClusterName", "slurm.cluster_name"),
    ("SlurmctldHost", _CONTROLLERS), ("ControlMachine", _CONTROLLERS), ("ControlAddr", _CONTROLLERS),
    ("BackupController", _CONTROLLERS), ("BackupAddr", _CONTROLLERS),
    ("NodeName", _NODES), ("NodeSet", _NODES), ("DownNodes", _NODES), ("FrontendName", _NODES),
    ("PartitionName", "slurm.partitions"),
    ("StateSaveLocation", "slurm.state_save"),
    ("AccountingStorageType", "slurm.accounting.enabled"),
    ("AccountingStorageHost", "the host of the pool with the 'slurmdbd' role"),
    ("AccountingStoragePort", "DbdPort in slurm.dbd_settings (the plan writes both from it)"),
    ("GresTypes", "the GPUs of the compute pools' models"),
    ("TopologyPlugin", "slurm.topology"),
    ("HealthCheckInterval", "slurm.health_check_interval"),
    ("PlugStackConfig", "slurm.containers.pyxis"),
    ("TaskProlog", "the tenants' pkeys (slurm/task_prolog.sh, installed by the slurmd role)"),
    ("SlurmUser", "the slurm_config role (slurm_config_user owns the state and configuration files)"),
    ("SlurmctldPidFile", _ROLE_PATH.format(role="slurm_controller", var="slurm_controller_pidfile")),
    ("SlurmdPidFile", _ROLE_PATH.format(role="slurmd", var="slurmd_pidfile")),
    ("SlurmdSpoolDir", _ROLE_PATH.format(role="slurmd", var="slurmd_spool_dir")),
    ("Include", "nothing: the plan's files are installed whole, a setting cannot include another file"),
)}

# slurmdbd.conf key (lower case) -> (key as Slurm spells it, what drives it instead)
DBD_OWNED: dict[str, tuple[str, str]] = {k.lower(): (k, why) for k, why in (
    ("DbdHost", "the host of the pool with the 'slurmdbd' role"),
    ("StorageType", "slurm.accounting (MariaDB on the slurmdbd host)"),
    ("StorageLoc", "the slurmdbd role, which creates the database (slurmdbd_database)"),
    ("StorageUser", "the slurmdbd role, which creates the database user (slurmdbd_database_user)"),
    ("SlurmUser", "the slurm_config role (slurm_config_user owns slurmdbd.conf)"),
    ("PidFile", _ROLE_PATH.format(role="slurmdbd", var="slurmdbd_pidfile")),
    ("Include", "nothing: the plan's files are installed whole, a setting cannot include another file"),
    *((f"Purge{what}After", "slurm.accounting.retention_months")
      for what in ("Event", "Job", "Resv", "Step", "Suspend", "TXN", "Usage")),
)}

# A key naming a password (StoragePass, AccountingStoragePass, JobCompPass) or another secret.
SECRET = re.compile(r"pass|secret|token", re.IGNORECASE)

# Keys of releases after 22.05 that the spec's software.slurm may name (slurm.conf(5) of 23.02).
NEWER = frozenset({"SuspendExcStates"})

_MANUAL = frozenset("""
AccountingStorageBackupHost AccountingStorageEnforce AccountingStorageExternalHost AccountingStorageHost
    AccountingStorageParameters AccountingStoragePass AccountingStoragePort AccountingStorageTRES
    AccountingStorageType AccountingStorageUser AccountingStoreFlags AcctGatherEnergyType
    AcctGatherFilesystemType AcctGatherInterconnectType AcctGatherNodeFreq AcctGatherProfileType
    AllowSpecResourcesUsage AuthAltParameters AuthAltTypes AuthInfo AuthType BackupAddr BackupController
    BatchStartTimeout BcastExclude BcastParameters BurstBufferType CliFilterPlugins ClusterName
    CommunicationParameters CompleteWait ControlAddr ControlMachine CoreSpecPlugin CpuFreqDef CpuFreqGovernors
    CredType DebugFlags DefCpuPerGPU DefMemPerCPU DefMemPerGPU DefMemPerNode DependencyParameters
    DisableRootJobs EioTimeout EnforcePartLimits Epilog EpilogMsgTime EpilogSlurmctld ExtSensorsFreq
    ExtSensorsType FairShareDampeningFactor FederationParameters FirstJobId GetEnvTimeout GpuFreqDef GresTypes
    GroupUpdateForce GroupUpdateTime HealthCheckInterval HealthCheckNodeState HealthCheckProgram InactiveLimit
    InteractiveStepOptions JobAcctGatherFrequency JobAcctGatherParams JobAcctGatherType JobCompHost JobCompLoc
    JobCompParams JobCompPass JobCompPort JobCompType JobCompUser JobContainerType JobFileAppend JobRequeue
    JobSubmitPlugins KillOnBadExit KillWait LaunchParameters LaunchType Licenses LogTimeFormat MCSParameters
    MCSPlugin MailDomain MailProg MaxArraySize MaxDBDMsgs MaxJobCount MaxJobId MaxMemPerCPU MaxMemPerNode
    MaxNodeCount MaxStepCount MaxTasksPerNode MessageTimeout MinJobAge MpiDefault MpiParams
    NodeFeaturesPlugins OverTimeLimit PlugStackConfig PluginDir PowerParameters PowerPlugin PrEpParameters
    PrEpPlugins PreemptExemptTime PreemptMode PreemptType PriorityCalcPeriod PriorityDecayHalfLife
    PriorityFavorSmall PriorityFlags PriorityMaxAge PriorityParameters PrioritySiteFactorParameters
    PrioritySiteFactorPlugin PriorityType PriorityUsageResetPeriod PriorityWeightAge PriorityWeightAssoc
    PriorityWeightFairshare PriorityWeightJobSize PriorityWeightPartition PriorityWeightQOS PriorityWeightTRES
    PrivateData ProctrackType Prolog PrologEpilogTimeout PrologFlags PrologSlurmctld PropagatePrioProcess
    PropagateResourceLimits PropagateResourceLimitsExcept RebootProgram ReconfigFlags RequeueExit
    RequeueExitHold ResumeFailProgram ResumeProgram ResumeRate ResumeTimeout ResvEpilog ResvOverRun ResvProlog
    ReturnToService RoutePlugin SchedulerParameters SchedulerTimeSlice SchedulerType ScronParameters
    SelectType SelectTypeParameters SlurmSchedLogFile SlurmSchedLogLevel SlurmUser SlurmctldAddr
    SlurmctldDebug SlurmctldHost SlurmctldLogFile SlurmctldParameters SlurmctldPidFile SlurmctldPlugstack
    SlurmctldPort SlurmctldPrimaryOffProg SlurmctldPrimaryOnProg SlurmctldSyslogDebug SlurmctldTimeout
    SlurmdDebug SlurmdLogFile SlurmdParameters SlurmdPidFile SlurmdPort SlurmdSpoolDir SlurmdSyslogDebug
    SlurmdTimeout SlurmdUser SrunEpilog SrunPortRange SrunProlog StateSaveLocation SuspendExcNodes
    SuspendExcParts SuspendProgram SuspendRate SuspendTime SuspendTimeout SwitchParameters SwitchType
    TCPTimeout TaskEpilog TaskPlugin TaskPluginParam TaskProlog TmpFS TopologyParam TopologyPlugin TrackWCKey
    TreeWidth UnkillableStepProgram UnkillableStepTimeout UsePAM VSizeFactor WaitTime X11Parameters
""".split())

KNOWN = _MANUAL | NEWER

DBD_KNOWN = frozenset("""
    AllowNoDefAcct ArchiveDir ArchiveEvents ArchiveJobs ArchiveResvs ArchiveScript ArchiveSteps ArchiveSuspend
    ArchiveTXN ArchiveUsage AuthAltParameters AuthAltTypes AuthInfo AuthType CommitDelay
    CommunicationParameters DbdAddr DbdBackupHost DbdHost DbdPort DebugFlags DebugLevel DebugLevelSyslog
    DefaultQOS LogFile LogTimeFormat MaxQueryTimeRange MessageTimeout Parameters PidFile PluginDir PrivateData
    PurgeEventAfter PurgeJobAfter PurgeResvAfter PurgeStepAfter PurgeSuspendAfter PurgeTXNAfter
    PurgeUsageAfter SlurmUser StorageBackupHost StorageHost StorageLoc StorageParameters StoragePass
    StoragePort StorageType StorageUser TCPTimeout TrackSlurmctldDown TrackWCKey
""".split())


def spelling(key: str, known) -> str:
    """The key as Slurm's manual spells it, or as written when Slurm's manual does not list it."""
    return next((k for k in known if k.lower() == key.lower()), key)
