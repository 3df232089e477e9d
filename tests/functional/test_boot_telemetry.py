"""Boot phases of every build, through the API as an operator sees them.

Nova's fake libvirt has no QEMU process and no console log: the phases
that need them (QEMU started, firmware, kernel) must be left out, and the
ones libvirt's calls show (request to defined, defined to vCPUs running)
recorded as instance action events with their start and finish times.
"""

import json
import os

from nova_gpu_ext.virt import boot_telemetry
from tests.functional import base


class BootTelemetryTest(base.GPUExtTestBase):

    def test_phases_are_instance_action_events(self):
        self.start_compute('host1')
        flavor = self._create_flavor(
            memory_mb=1024, extra_spec={'gpu:enabled': 'true'})
        with self.assertLogs('nova_gpu_ext.virt.boot_telemetry',
                             level='INFO') as logs:
            server = self._create_server(flavor_id=flavor, networks='none')
        api = self.admin_api
        api.microversion = '2.84'
        actions = api.get_instance_actions(server['id'])
        create = [a for a in actions if a['action'] == 'create'][0]
        details = api.get_instance_action_details(
            server['id'], create['request_id'])
        events = {e['event']: e for e in details['events']}
        # Nova's own event of the build is there, and ours next to it.
        self.assertIn('compute__do_build_and_run_instance', events)
        ours = {name[len(boot_telemetry.EVENT_PREFIX):]: e
                for name, e in events.items()
                if name.startswith(boot_telemetry.EVENT_PREFIX)}
        self.assertEqual({'defined', 'launched'}, set(ours))
        for event in ours.values():
            self.assertEqual('Success', event['result'])
            self.assertEqual('host1', event['host'])
            self.assertLessEqual(event['start_time'], event['finish_time'])
            self.assertIn(' ms: ', event['details'])
        # Phases follow each other: defined ends where launched starts.
        self.assertEqual(ours['defined']['finish_time'],
                         ours['launched']['start_time'])
        self.assertLessEqual(create['start_time'][:19],
                             ours['defined']['start_time'][:19])
        # One INFO line per build.
        lines = [line for line in logs.output if 'Boot phases:' in line]
        self.assertEqual(1, len(lines), logs.output)
        self.assertIn('launched', lines[0])
        self.assertNotIn('firmware', lines[0])
        # The local record boot-report reads.
        record_path = os.path.join(base.CONF.gpu_ext.state_dir,
                                   boot_telemetry.RECORD_FILE)
        records = boot_telemetry.read_records(record_path)
        self.assertEqual([server['id']], [r['uuid'] for r in records])
        self.assertEqual(1024, records[0]['memory_mb'])
        self.assertEqual({'defined', 'launched'},
                         set(records[0]['phases']))
        # And the summary in the compute node's stats.
        compute = self.computes['host1']
        from nova import context as nova_context
        compute.manager.update_available_resource(
            nova_context.get_admin_context())
        node = self._get_compute_node_stats('host1')
        summary = json.loads(node[boot_telemetry.STATS_KEY])
        self.assertEqual(1, summary['builds'])
        self.assertIn('launched', summary['median_ms'])

    def test_no_telemetry_when_switched_off(self):
        self.flags(boot_telemetry=False, group='gpu_ext')
        self.start_compute('host1')
        server = self._create_server(networks='none')
        create = self.admin_api.get_instance_actions(server['id'])[0]
        details = self.admin_api.get_instance_action_details(
            server['id'], create['request_id'])
        self.assertFalse([e for e in details['events'] if e['event']
                          .startswith(boot_telemetry.EVENT_PREFIX)])

    def _get_compute_node_stats(self, host):
        from nova import context as nova_context
        from nova import objects
        ctxt = nova_context.get_admin_context()
        node = objects.ComputeNodeList.get_all_by_host(ctxt, host)[0]
        return node.stats
