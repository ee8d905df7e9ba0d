#!/usr/bin/env bash
# A real single-node Slurm on localhost for tests and for trying the Slurm labeller:
# Debian's slurm-wlm 22.05 (slurmctld + slurmd), munge, and slurmdbd on the local MariaDB
# (sacct, which submitit reads job states from, needs accounting).
# Installs what is missing (root, apt), writes /etc/slurm/*.conf, starts the daemons, and
# waits until `sinfo` shows the node idle. Safe to run again: a running cluster is left as is.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

answers() { timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }
if command -v sinfo >/dev/null && answers && timeout 5 sacct -n -X -S now >/dev/null 2>&1; then
  echo "slurm: already running"; exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "slurm: not installed and no apt-get" >&2; exit 3; }
  apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server >/dev/null || {
    apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server >/dev/null; }
fi

host=$(hostname -s)
node=$(slurmd -C | head -1)          # NodeName=<host> CPUs=... RealMemory=...
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/run/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm /var/run/slurm
chown munge:munge /run/munge

# munge: a key, then the daemon
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# MariaDB for accounting (the machines start one; start it when it is not answering)
if ! mariadb -uroot -e 'select 1' >/dev/null 2>&1; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 30); do mariadb -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 1; done
fi
mariadb -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/var/run/slurm/slurmdbd.pid
CONF
chown slurm:slurm /etc/slurm/slurmdbd.conf && chmod 600 /etc/slurm/slurmdbd.conf

# Memory limits by cgroup (so a job over --mem ends OUT_OF_MEMORY) where the memory
# controller is mounted; plain process tracking otherwise.
if [ -d /sys/fs/cgroup/memory ] || grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  proctrack=proctrack/cgroup; task=task/cgroup; gather=jobacct_gather/cgroup
  version=v2; [ -d /sys/fs/cgroup/memory ] && version=v1
  printf 'CgroupPlugin=cgroup/%s\nCgroupMountpoint=/sys/fs/cgroup\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\nIgnoreSystemd=yes\n' \
    "$version" > /etc/slurm/cgroup.conf
else
  proctrack=proctrack/linuxproc; task=task/none; gather=jobacct_gather/linux
fi

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=mlipserve
SlurmctldHost=${host}
AuthType=auth/munge
SlurmUser=slurm
SlurmctldPidFile=/var/run/slurm/slurmctld.pid
SlurmdPidFile=/var/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=${proctrack}
TaskPlugin=${task}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=${gather}
JobAcctGatherFrequency=1
KillWait=2
MinJobAge=60
InactiveLimit=0
${node}
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF

pgrep -x slurmdbd >/dev/null || /usr/sbin/slurmdbd
for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -i -Q add cluster mlipserve >/dev/null 2>&1 || true
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do
  if answers; then
    scontrol update nodename="${host}" state=resume >/dev/null 2>&1 || true
    timeout 10 sacct -n -X -S now >/dev/null 2>&1 && { echo "slurm: up on ${host}"; exit 0; }
  fi
  sleep 1
done
echo "slurm: did not come up; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 4
