// Whether this banger runs as systemd services (`banger system install`): then `banger daemon start|stop|restart`
// go through systemctl, so systemd keeps managing the daemons instead of finding copies started beside them.
import { installOf, readInstallRecord, type InstallRecord } from '../system/install-layout.ts';
import { DAEMON_UNIT, HELPER_UNIT } from '../system/systemd-units.ts';
import { systemctlAt } from './systemctl.ts';

/** The install record of the release this CLI runs from, when it was installed as services. */
export function serviceInstall(): InstallRecord | null {
  const layout = installOf();
  return layout ? readInstallRecord(layout.prefix) : null;
}

/** systemctl VERB on both units, helper first when starting, daemon first when stopping. */
export function systemctlBoth(verb: 'start' | 'stop' | 'restart'): string {
  const units = verb === 'stop' ? [DAEMON_UNIT, HELPER_UNIT] : [HELPER_UNIT, DAEMON_UNIT];
  systemctlAt().run([verb, ...units]);
  return `${verb === 'stop' ? 'stopped' : verb === 'start' ? 'started' : 'restarted'} ${units.join(' and ')} (systemd; running VMs keep running)`;
}
