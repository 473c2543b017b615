"""OpenBLAS core-type choice (scratchrnn.backend.blas_tuning): which CPUs, and when it stays out."""

from __future__ import annotations

import pytest

from scratchrnn.backend.blas_tuning import coretype_for, tune_openblas_env

AVX512 = "fpu sse avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16"


def cpuinfo(vendor: str, family: int, flags: str) -> str:
    one = f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nflags\t\t: {flags}\n"
    return one + "\n" + one.replace(": 0", ": 1")


@pytest.mark.parametrize("vendor, family, flags, expected", [
    ("AuthenticAMD", 26, AVX512, "SkylakeX"),          # Zen 5: OpenBLAS 0.3.31 falls back to AVX2
    ("AuthenticAMD", 27, AVX512, "SkylakeX"),          # later families, same
    ("AuthenticAMD", 25, AVX512, None),                # Zen 4: OpenBLAS picks SkylakeX itself
    ("AuthenticAMD", 26, "fpu sse avx avx2 fma", None),  # no AVX-512: leave it alone
    ("AuthenticAMD", 26, AVX512.replace("avx512bw ", ""), None),
    ("GenuineIntel", 6, AVX512, None),                 # Intel: OpenBLAS knows its models
])
def test_coretype_for(vendor, family, flags, expected):
    assert coretype_for(cpuinfo(vendor, family, flags)) == expected


@pytest.mark.parametrize("text", ["", "garbage", "vendor_id: AuthenticAMD\ncpu family: x\n"])
def test_coretype_for_unreadable_cpuinfo(text):
    assert coretype_for(text) is None


@pytest.fixture
def zen5(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo("AuthenticAMD", 26, AVX512))
    return str(path)


def test_sets_coretype_before_numpy(zen5):
    env: dict[str, str] = {}
    assert tune_openblas_env(env, {}, zen5) == "SkylakeX"
    assert env == {"OPENBLAS_CORETYPE": "SkylakeX"}


@pytest.mark.parametrize("env, modules", [
    ({"OPENBLAS_CORETYPE": "Haswell"}, {}),            # the user's choice wins
    ({"SCRATCHRNN_TUNE_BLAS": "0"}, {}),               # opted out
    ({}, {"numpy": object()}),                         # too late: OpenBLAS is loaded
])
def test_stays_out(zen5, env, modules):
    before = dict(env)
    assert tune_openblas_env(env, modules, zen5) is None
    assert env == before


def test_no_cpuinfo(tmp_path):
    env: dict[str, str] = {}
    assert tune_openblas_env(env, {}, str(tmp_path / "missing")) is None
    assert env == {}
