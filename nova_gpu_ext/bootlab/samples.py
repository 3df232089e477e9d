"""Hand-written Nova-like domain XML, for when no driver output is at hand.

Layer rule: data only. What upstream ``LibvirtDriver`` (Nova 34) defines for
a plain flavor on an x86 KVM host with default options and an image without
properties: ``pc`` machine, SMBIOS sysinfo, ``host-model`` CPU, a qcow2 root
disk on virtio, serial pty with a virtlogd log file, a USB tablet (Nova's
``pointer_model = usbtablet`` default), VNC, ``virtio`` video, a virtio RNG
and a memory balloon with 10 s statistics. The boot lab and the benchmark
use it only when no XML from the driver is given, and say so.
"""

NOVA_LIKE_PLAIN = """\
<domain type="kvm">
  <uuid>0b4a6f5e-7b3c-4b8e-9a52-9f3d3f2b1c00</uuid>
  <name>instance-00000001</name>
  <memory>%(memory_kib)d</memory>
  <vcpu>%(vcpus)d</vcpu>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="34.0.0"/>
      <nova:name>plain</nova:name>
      <nova:flavor name="%(flavor)s">
        <nova:memory>%(memory_mb)d</nova:memory>
        <nova:disk>1</nova:disk>
        <nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral>
        <nova:vcpus>%(vcpus)d</nova:vcpus>
      </nova:flavor>
    </nova:instance>
  </metadata>
  <sysinfo type="smbios">
    <system>
      <entry name="manufacturer">OpenStack Foundation</entry>
      <entry name="product">OpenStack Nova</entry>
      <entry name="version">34.0.0</entry>
      <entry name="serial">0b4a6f5e-7b3c-4b8e-9a52-9f3d3f2b1c00</entry>
      <entry name="uuid">0b4a6f5e-7b3c-4b8e-9a52-9f3d3f2b1c00</entry>
      <entry name="family">Virtual Machine</entry>
    </system>
  </sysinfo>
  <os>
    <type machine="pc">hvm</type>
    <boot dev="hd"/>
    <smbios mode="sysinfo"/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cputune>
    <shares>%(shares)d</shares>
  </cputune>
  <clock offset="utc">
    <timer name="pit" tickpolicy="delay"/>
    <timer name="rtc" tickpolicy="catchup"/>
    <timer name="hpet" present="no"/>
  </clock>
  <cpu mode="host-model" match="exact">
    <topology sockets="%(vcpus)d" cores="1" threads="1"/>
  </cpu>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2" cache="none"/>
      <source file="/var/lib/nova/instances/0b4a6f5e/disk"/>
      <target dev="vda" bus="virtio"/>
    </disk>
    <serial type="pty">
      <log file="/var/lib/nova/instances/0b4a6f5e/console.log" append="off"/>
    </serial>
    <input type="tablet" bus="usb"/>
    <graphics type="vnc" autoport="yes" listen="127.0.0.1"/>
    <video>
      <model type="virtio"/>
    </video>
    <memballoon model="virtio">
      <stats period="10"/>
    </memballoon>
    <rng model="virtio">
      <backend model="random">/dev/urandom</backend>
    </rng>
  </devices>
</domain>
"""


def nova_like_plain(memory_mb: int = 2048, vcpus: int = 2,
                    flavor: str = 'plain') -> str:
    """Nova-like XML of a plain flavor with ``memory_mb`` and ``vcpus``."""
    return NOVA_LIKE_PLAIN % dict(memory_kib=memory_mb * 1024,
                                  memory_mb=memory_mb, vcpus=vcpus,
                                  shares=1024 * vcpus, flavor=flavor)
