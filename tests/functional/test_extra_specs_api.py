"""The ``gpu:`` extra specs are validated at the Nova API (HTTP 400)."""

from nova.tests.functional.api import client

from nova_gpu_ext.core import spec as specs
from tests.functional import base


class GPUExtraSpecAPITest(base.GPUExtTestBase):

    microversion = '2.86'
    sysfs_sample = None

    def setUp(self):
        super().setUp()
        self.flavor_id = self._create_flavor(name='gpu-flavor')

    def _post(self, key, value):
        return self.admin_api.post_extra_spec(
            self.flavor_id, {'extra_specs': {key: value}})

    def _assert_400(self, key, value, *expected):
        exc = self.assertRaises(
            client.OpenStackApiException, self._post, key, value)
        self.assertEqual(400, exc.response.status_code)
        body = exc.response.text
        for text in expected:
            self.assertIn(text, body)

    def test_unknown_gpu_key_is_400_and_lists_known_keys(self):
        self._assert_400('gpu:nonsense', '1', 'gpu:nonsense',
                         'gpu:numa_affinity_policy', 'gpu:placement')

    def test_bad_enum_value_is_400_naming_key_and_values(self):
        self._assert_400('gpu:numa_affinity_policy', 'sometimes',
                         'gpu:numa_affinity_policy',
                         'required, socket, preferred, legacy')

    def test_bad_int_and_bool_values_are_400(self):
        self._assert_400('gpu:min_share_percent', '0',
                         'gpu:min_share_percent', 'integer >= 1')
        self._assert_400('gpu:enabled', 'maybe', 'gpu:enabled', 'boolean')
        self._assert_400('gpu:tweak:Bad-Name', 'true', 'gpu:tweak:Bad-Name')

    def test_every_valid_value_in_the_table_is_accepted(self):
        samples = {bool: 'true', int: '50'}
        for row in specs.SPEC_TABLE:
            key = row.key.replace('{name}', 'boot_menu_off')
            value = row.enum[0] if row.enum else samples[row.type]
            with self.subTest(key=key):
                result = self._post(key, value)
                self.assertEqual(value, result.body['extra_specs'][key])

    def test_unknown_tweak_name_is_400_naming_the_installed_tweaks(self):
        from nova_gpu_ext.api import extra_specs
        installed = extra_specs.installed_tweaks()
        self._assert_400('gpu:tweak:prealloc_thread', 'false',
                         'gpu:tweak:prealloc_thread', 'installed tweaks',
                         *installed)
        # The real name is accepted, and nothing was stored for the typo.
        self._post('gpu:tweak:prealloc_threads', 'false')
        stored = self.admin_api.get_extra_specs(self.flavor_id)
        self.assertEqual({'gpu:tweak:prealloc_threads': 'false'}, stored)

    def test_other_namespaces_are_untouched(self):
        self._post('hw:numa_nodes', '1')
        self._post('vendor:anything', 'goes')
