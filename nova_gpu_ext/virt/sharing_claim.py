"""The compute's sharing admission: an atomic claim per physical GPU.

Layer rule: adapter (compute side). It only gathers facts (the guest's
mdevs and VFs, the other guests' devices from libvirt, the builds in flight
on this compute) and asks the one decision, :func:`decide.decide`, the
scheduler filter and ``nova-gpu-ext explain`` ask too.

Why a claim: the scheduler admits a tenant from placement's usage, but two
schedulers (or a stale usage read) can send two builds to one full GPU, and
a domain is defined only at the end of the build, so counting defined
domains misses builds in flight. Here, under one lock per compute, a build
counts the devices of every defined domain *and* of every build that passed
admission and is not defined yet, decides, and records its own claim before
the lock is released. The claim is released when the build fails or the
guest goes (``cleanup``, a confirmed migration away). A rescue, rebuild or
hard reboot of the same guest never counts itself: the guest's own UUID is
left out of the count.

A refusal raises :class:`operations.Refused`
(``ComputeResourcesUnavailable``)
so the build is rescheduled to another host.
"""

import dataclasses
import threading

from lxml import etree
from oslo_log import log as logging
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import utils as libvirt_utils

from nova_gpu_ext import model
from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.virt import guest_devices
from nova_gpu_ext.core import sharing
from nova_gpu_ext.core import affinity
from nova_gpu_ext.core import decide
from nova_gpu_ext.virt import operations
from nova_gpu_ext.core import spec as specs

LOG = logging.getLogger(__name__)


class SharingClaims:
    """Claims of shared physical GPUs on one compute.

    ``_claims``: instance UUID -> {physical GPU address: devices}, with the
    guest's ``gpu:min_share_percent`` as a fraction in ``_min_shares``.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._claims = {}
        self._min_shares = {}

    # -- what the decision is told -------------------------------------------

    def claimed(self):
        """{GPU address: {instance UUID: devices}} of the recorded claims."""
        out = {}
        for uuid, gpus in list(self._claims.items()):
            for address, n in gpus.items():
                out.setdefault(address, {})[uuid] = n
        return out

    def resident_min_share(self, address, exclude=None):
        """The strictest min share among the claims on ``address``."""
        shares = [self._min_shares[u] for u, gpus in list(self._claims.items())
                  if address in gpus and u != exclude and
                  self._min_shares.get(u) is not None]
        return max(shares) if shares else None

    # -- the claim ----------------------------------------------------------

    def admit(self, driver, guest, instance, request, profile_for,
              strategy):
        """Claim the guest's shared GPUs or raise ``Refused``; return the
        lines saying what was admitted."""
        topology = driver._gpu_host_topology
        wanted = self._guest_devices(driver, guest, topology)
        if not wanted:
            self.release(instance.uuid)
            return []
        lines = []
        with self._lock:
            in_use = self._count(driver, topology, instance.uuid)
            mine = {}
            for address, type_name in wanted:
                gpu = topology.gpu(address)
                entry = host_facts.gpu_entry(topology, gpu)
                if type_name:
                    entry = dataclasses.replace(entry, type=type_name)
                tenants = in_use.get(address, 0) + mine.get(address, 0)
                facts = decide.HostFacts(nodes=(), gpus=(host_facts.gpu_facts(
                    entry, tenants, profile_for,
                    self.resident_min_share(address, instance.uuid)),))
                decision = decide.decide(decide.DecisionRequest(
                    needs=affinity.GuestNeeds.without_numa_rule(
                        instance.flavor.vcpus, instance.flavor.memory_mb),
                    strategy=strategy, min_share=request.min_share), facts)
                verdict = decision.gpus[0] if decision.gpus else None
                if verdict is None or verdict.load is None:
                    continue        # not time-sliced: nothing to admit
                if not decision.ok:
                    # Refused on a new claim (the build reschedules); a
                    # restart in place keeps its GPU, with a warning.
                    operations.admit(
                        instance, 'GPU %s: %s' % (address, verdict.reason))
                mine[address] = mine.get(address, 0) + 1
                lines.append('sharing: GPU %s: %s' % (
                    address, _describe(verdict.load)))
            self._claims[instance.uuid] = mine
            self._min_shares[instance.uuid] = request.min_share
        return lines

    def recover(self, driver, instances):
        """After a restart, know the residents' min shares again.

        ``instances``: the guests Nova loaded for this host at startup,
        with their flavors (``process_instances_at_startup``). Each guest
        whose flavor asks ``gpu:min_share_percent`` and whose domain holds
        shared devices gets its claim back, on the physical GPUs its domain
        uses, so a new tenant that would break its share is refused (at the
        scheduler once the summary is published, and here). Devices are
        counted once: a claim never adds to what its defined domain has.
        """
        shares = {}
        for instance in instances:
            try:
                if instance.deleted or not instance.flavor:
                    continue
                request = specs.parse(instance.flavor.extra_specs,
                                      on_error=lambda exc: None)
            except Exception:
                LOG.debug('Cannot read the flavor of %s', instance.uuid,
                          exc_info=True)
                continue
            if request.min_share is not None:
                shares[instance.uuid] = request.min_share
        if not shares:
            return 0
        defined = _defined_devices(driver, driver._gpu_host_topology)
        recovered = set()
        with self._lock:
            for address, guests in defined.items():
                for uuid, n in guests.items():
                    if uuid in shares and uuid not in self._min_shares:
                        self._claims.setdefault(uuid, {})[address] = n
                        recovered.add(uuid)
            for uuid in recovered:
                self._min_shares[uuid] = shares[uuid]
        if recovered:
            LOG.info('nova-gpu-ext: recovered the minimum GPU share of %d '
                     'resident guest(s) from their flavors', len(recovered))
        return len(recovered)

    def in_use(self, driver, topology):
        """Devices in use per physical GPU, builds in flight included."""
        with self._lock:
            return self._count(driver, topology, None)

    def holds(self, instance_uuid):
        """Is a claim recorded for this guest?"""
        return instance_uuid in self._claims or \
            instance_uuid in self._min_shares

    def release(self, instance_uuid):
        """The build failed or the guest left this compute."""
        with self._lock:
            self._claims.pop(instance_uuid, None)
            self._min_shares.pop(instance_uuid, None)

    # -- facts --------------------------------------------------------------

    @staticmethod
    def _guest_devices(driver, guest, topology):
        """[(physical GPU address, mdev type or None)] of the guest's shared
        devices: an mdev counts on its parent (on the PF when the parent is
        a VF, SR-IOV vGPU), a VF passed through on its PF."""
        out = []
        for dev in guest.devices:
            if isinstance(dev, vconfig.LibvirtConfigGuestHostdevMDEV):
                info = driver._get_mediated_device_information(
                    libvirt_utils.mdev_uuid2name(dev.uuid))
                parent = topology.physical_gpu(
                    guest_devices.libvirt_name_to_address(info['parent']))
                if parent is None:
                    continue
                out.append((str(parent.address), info.get('type')))
            elif isinstance(dev, vconfig.LibvirtConfigGuestHostdevPCI):
                # A VF's PF is shared; a whole GPU is not admitted here.
                address = guest_devices.pci_address(dev)
                gpu = topology.physical_gpu(address)
                if gpu is not None and gpu != topology.gpu(address):
                    out.append((str(gpu.address), None))
        return out

    def _count(self, driver, topology, exclude):
        """Devices in use per physical GPU: defined domains and the claims
        in flight, each guest once, ``exclude`` (this guest) never."""
        per_guest = _defined_devices(driver, topology)
        for address, guests in self.claimed().items():
            for uuid, n in guests.items():
                per_guest.setdefault(address, {}).setdefault(uuid, n)
        return {address: sum(n for uuid, n in guests.items()
                             if uuid != exclude)
                for address, guests in per_guest.items()}


def recover_at_startup(driver, instances):
    """:meth:`SharingClaims.recover` for the driver's startup hook; a
    failure is logged and never stops nova-compute from starting (the
    residents' shares are then known only for guests admitted since)."""
    claims = getattr(driver, '_sharing_claims', None)
    if claims is None:
        return 0
    try:
        return claims.recover(driver, instances)
    except Exception:
        LOG.exception('nova-gpu-ext: cannot recover the residents\' '
                      'minimum GPU shares; new tenants are checked against '
                      'the guests admitted from now on')
        return 0


def nova_vgpu_type(driver, topology, address):
    """The mdev type Nova allocates on a physical GPU (on its first VF
    that offers types, SR-IOV vGPU), from ``[devices]`` through
    ``LibvirtDriver._get_vgpu_type_per_pgpu``; None when unknown."""
    gpu = topology.gpu(address)
    if gpu is None:
        return None
    parents = [gpu] + [topology.gpu(v) for v in gpu.vfs]
    for parent in parents:
        if parent is None or not parent.mdev_types:
            continue
        try:
            return driver._get_vgpu_type_per_pgpu(
                parent.address.libvirt_name)
        except Exception:
            LOG.debug('Cannot read the vGPU type of %s', address,
                      exc_info=True)
            return None
    return None


def _defined_devices(driver, topology):
    """{physical GPU: {instance UUID: devices}} from libvirt's domains."""
    out = {}

    def physical(address):
        gpu = topology.physical_gpu(address)
        return None if gpu is None else str(gpu.address)

    try:
        assigned = driver._get_all_assigned_mediated_devices() or {}
        if assigned:
            for mdev in driver._get_mediated_devices():
                owner = assigned.get(mdev['uuid'])
                if owner is None:
                    continue
                key = physical(guest_devices.libvirt_name_to_address(
                    mdev['parent']))
                if key:
                    guests = out.setdefault(key, {})
                    guests[owner] = guests.get(owner, 0) + 1
    except Exception:
        LOG.debug('Cannot count mediated devices in use', exc_info=True)
    if not any(g.physfn is not None for g in topology.gpus):
        return out
    try:
        domains = driver._host.list_guests(only_running=False)
    except Exception:
        LOG.debug('Cannot list domains to count VFs', exc_info=True)
        return out
    for dom in domains:
        try:
            uuid = dom.uuid
            root = etree.fromstring(dom.get_xml_desc().encode())
        except Exception:
            continue
        for address in root.iterfind(
                "./devices/hostdev[@type='pci']/source/address"):
            try:
                text = str(model.PCIAddress.from_fields(*(
                    address.get(k)
                    for k in ('domain', 'bus', 'slot', 'function'))))
            except (TypeError, ValueError):
                continue
            gpu = topology.gpu(text)
            if gpu is not None and gpu.physfn is not None:
                guests = out.setdefault(physical(text), {})
                guests[uuid] = guests.get(uuid, 0) + 1
    return out


def _describe(load):
    return sharing.describe(load.profile, load.tenants + 1)
