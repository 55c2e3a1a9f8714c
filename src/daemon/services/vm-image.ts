// What a VM's image says about booting it and reaching it: its init (systemd, or banger's agent as PID 1) and
// whether it has sshd (without it, commands go through the agent and ssh is refused with what works instead).
import { BangerError } from '../../protocol/errors.ts';
import type { ImageBoot, VmInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';

/** How a VM's image boots and whether it has sshd; a built-in image (systemd, sshd) when it is not registered. */
export function imageTraits(store: Store, vm: VmInfo): { boot: ImageBoot; hasSshd: boolean } {
  const image = store.getImage(vm.image);
  return image ? { boot: image.boot, hasSshd: image.hasSshd } : { boot: 'systemd', hasSshd: true };
}

/** Refuses ssh to a VM whose image has no sshd, naming what works instead. */
export function requireSshd(store: Store, vm: VmInfo, what: string): void {
  if (imageTraits(store, vm).hasSshd) return;
  throw new BangerError('VM_BAD_STATE', `${what} needs ssh, and image ${vm.image} of VM ${vm.name} has no sshd`, {
    hint: `run commands through its agent: banger vm exec ${vm.name} -- CMD (or use an image with openssh-server)`,
  });
}
