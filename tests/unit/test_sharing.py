"""The time-slice sharing model: the issue's published figures and admit()."""

import pytest

from nova_gpu_ext.core import sharing


def profile(slice_ms, switch_ms=0.0, **kwargs):
    return sharing.SharingProfile(slice_ms, switch_ms, **kwargs)


# -- the published figures (issue 5 acceptance) ----------------------------

@pytest.mark.parametrize('slice_ms,switch_ms,value,shown', [
    # 6 ms slices, about 0.2 ms per switch: 96.7 % efficiency.
    (6.0, 0.2, 6.0 / 6.2, '96.7%'),
    # 1 ms slices, 0.5 ms switches: about 66 %, a third wasted.
    (1.0, 0.5, 2.0 / 3.0, '66.6%'),
    (100.0, 0.0, 1.0, '100.0%'),
])
def test_efficiency_reproduces_published_figures(slice_ms, switch_ms, value,
                                                 shown):
    eff = sharing.efficiency(profile(slice_ms, switch_ms))
    assert eff == pytest.approx(value)
    assert sharing.format_percent(eff) == shown


def test_one_ms_slices_waste_a_third():
    eff = sharing.efficiency(profile(1.0, 0.5))
    assert round(eff * 100) in (66, 67)
    assert 1 - eff == pytest.approx(1 / 3)


def test_sixteen_tenants_of_100_ms_wait_1_6_s():
    assert sharing.worst_case_wait_ms(profile(100.0), 16) == 1600.0


def test_sixteen_tenants_admitted_with_margin_1_under_2_s():
    decision = sharing.admit(profile(100.0, margin=1.0), 15)
    assert decision.ok
    assert decision.tenants_after == 16
    assert decision.worst_wait_ms == 1600.0
    assert decision.limit_ms == 2000.0
    assert '1.6 s' in decision.reason and 'within' in decision.reason


def test_sixteen_tenants_refused_under_margin_0_75():
    decision = sharing.admit(profile(100.0, margin=0.75), 15)
    assert not decision.ok
    assert decision.worst_wait_ms == 1600.0
    assert decision.limit_ms == 1500.0
    assert decision.reason == (
        '16 tenants with 100 ms slices wait 1.6 s between turns, over the '
        '1.5 s limit (2.0 s guest timeout x 0.75 margin).')


# -- the formulas -----------------------------------------------------------

@pytest.mark.parametrize('slice_ms,switch_ms,n,wait', [
    (100.0, 0.0, 0, 0.0),
    (100.0, 0.0, 1, 100.0),
    (100.0, 0.0, 17, 1700.0),
    # A nonzero switch makes the wait larger: one switch per slice.
    (100.0, 0.2, 16, 1603.2),
    (6.0, 0.2, 2, 12.4),
])
def test_worst_case_wait_is_one_round(slice_ms, switch_ms, n, wait):
    assert sharing.worst_case_wait_ms(
        profile(slice_ms, switch_ms), n) == pytest.approx(wait)


@pytest.mark.parametrize('slice_ms,switch_ms,n,share', [
    (6.0, 0.2, 1, 6.0 / 6.2),
    (6.0, 0.2, 4, 6.0 / 6.2 / 4),
    (100.0, 0.0, 16, 1 / 16),
    (1.0, 0.5, 2, 1 / 3),
])
def test_share_per_tenant_is_efficiency_over_n(slice_ms, switch_ms, n,
                                               share):
    assert sharing.share_per_tenant(
        profile(slice_ms, switch_ms), n) == pytest.approx(share)


# -- admission ---------------------------------------------------------------

@pytest.mark.parametrize('prof,tenants_now,min_share,ok,fragments', [
    # The brief's own example sentence.
    (profile(100.0, margin=0.75), 16, None, False,
     ['17 tenants with 100 ms slices wait 1.7 s between turns, over the '
      '1.5 s limit (2.0 s guest timeout x 0.75 margin)']),
    # The switch cost counts: 15 x 100.2 ms is over 1.5 s, 15 x 100 is not.
    (profile(100.0, 0.2, margin=0.75), 14, None, False,
     ['100 ms slices and 0.2 ms switches wait 1.503 s']),
    (profile(100.0, 0.0, margin=0.75), 14, None, True, ['within']),
    # max_tenants is a hard cap even far from the timeout.
    (profile(6.0, 0.2, max_tenants=4), 4, None, False,
     ['4 tenants already share this GPU', 'max_tenants 4']),
    (profile(6.0, 0.2, max_tenants=4), 3, None, True, ['4 tenants']),
    # min_share: 10 tenants get 9.6 % each, below 10 %.
    (profile(6.0, 0.2), 9, 0.10, False,
     ['10 tenants would each get 9.6% of the GPU', '10.0% minimum share']),
    (profile(6.0, 0.2), 8, 0.10, True, ['10.7%']),
    # A slice longer than the limit refuses even the first tenant.
    (profile(3000.0), 0, None, False, ['1 tenant with 3000 ms slices waits']),
])
def test_admit(prof, tenants_now, min_share, ok, fragments):
    decision = sharing.admit(prof, tenants_now, min_share)
    assert decision.ok is ok
    for fragment in fragments:
        assert fragment in decision.reason
    assert decision.tenants_after == tenants_now + 1
    assert decision.share == pytest.approx(
        sharing.share_per_tenant(prof, tenants_now + 1))


def test_admit_names_every_failed_condition():
    decision = sharing.admit(profile(100.0, max_tenants=4, margin=0.1), 4,
                             0.5)
    assert not decision.ok
    parts = decision.reason.split('; ')
    assert len(parts) == 3
    assert 'max_tenants 4' in parts[0]
    assert 'over the 200 ms limit' in parts[1]
    assert '50.0% minimum share' in parts[2]


def test_admit_protects_residents_min_share():
    prof = profile(6.0, 0.2)
    # 3 tenants get 32.2 % each; a resident that needs 30 % blocks a 4th.
    assert sharing.admit(prof, 2, resident_min_share=0.30).ok
    decision = sharing.admit(prof, 3, resident_min_share=0.30)
    assert not decision.ok
    assert 'tenant already on this GPU needs at least 30.0%' in (
        decision.reason)
    assert sharing.admit(prof, 3).ok


def test_reason_shows_ms_when_seconds_would_hide_the_difference():
    decision = sharing.admit(profile(100.01, margin=0.75), 14)
    assert not decision.ok
    assert '1500.15 ms' in decision.reason


def test_float_rounding_does_not_refuse_an_exact_fit():
    # 3 x 0.1 is 0.30000000000000004 in binary floating point.
    assert sharing.admit(profile(0.1, guest_timeout_ms=0.3), 2).ok
    assert not sharing.admit(profile(0.1, guest_timeout_ms=0.3), 3).ok


# -- max_safe_tenants ---------------------------------------------------------

@pytest.mark.parametrize('prof,min_share,expected', [
    (profile(100.0), None, 20),
    (profile(100.0, margin=0.75), None, 15),
    (profile(100.0, 1.0, margin=0.75), None, 14),
    (profile(6.0, 0.2), None, 322),
    (profile(6.0, 0.2, max_tenants=16), None, 16),
    (profile(6.0, 0.2), 0.10, 9),
    (profile(6.0, 0.2), 0.25, 3),
    (profile(6.0, 0.2), 0.97, 0),
    (profile(100.0), 0.05, 20),
    (profile(3000.0), None, 0),
])
def test_max_safe_tenants(prof, min_share, expected):
    assert sharing.max_safe_tenants(prof, min_share) == expected


@pytest.mark.parametrize('prof,min_share', [
    (profile(100.0), None),
    (profile(100.0, 2.0, margin=0.75), None),
    (profile(6.0, 0.2, max_tenants=7), None),
    (profile(6.0, 0.2), 0.1),
    (profile(0.1, guest_timeout_ms=0.3), None),
    (profile(33.3, 0.7, guest_timeout_ms=1000, margin=0.9), 0.02),
])
def test_max_safe_tenants_agrees_with_admit(prof, min_share):
    limit = sharing.max_safe_tenants(prof, min_share)
    for n in range(limit):
        assert sharing.admit(prof, n, min_share).ok, n
    assert not sharing.admit(prof, limit, min_share).ok


# -- validation and display ---------------------------------------------------

@pytest.mark.parametrize('kwargs', [
    dict(slice_ms=0, switch_ms=0),
    dict(slice_ms=6, switch_ms=-0.1),
    dict(slice_ms=6, switch_ms=0.2, max_tenants=0),
    dict(slice_ms=6, switch_ms=0.2, guest_timeout_ms=0),
    dict(slice_ms=6, switch_ms=0.2, margin=0),
])
def test_invalid_profiles_raise(kwargs):
    with pytest.raises(ValueError):
        sharing.SharingProfile(**kwargs)


@pytest.mark.parametrize('call', [
    lambda: sharing.admit(profile(6.0), 0, min_share=1.5),
    lambda: sharing.admit(profile(6.0), 0, min_share=0),
    lambda: sharing.admit(profile(6.0), -1),
    lambda: sharing.worst_case_wait_ms(profile(6.0), -1),
    lambda: sharing.max_safe_tenants(profile(6.0), min_share=2),
])
def test_invalid_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize('fraction,shown', [
    (0.57, '57.0%'),          # 0.57 * 1000 is 569.99... in binary
    (0.0625, '6.2%'),         # rounded down, never up
    (1.0, '100.0%'),
    (0.0, '0.0%'),
])
def test_format_percent_rounds_down(fraction, shown):
    assert sharing.format_percent(fraction) == shown


def test_describe_gives_the_explain_line():
    line = sharing.describe(profile(6.0, 0.2, margin=0.75), 3)
    assert line == (
        '3 tenants with 6 ms slices and 0.2 ms switches: efficiency 96.7%, '
        '32.2% each, worst-case wait 18.6 ms of the 1.5 s limit')
