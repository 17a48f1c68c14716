"""The dry run names the CPU it calibrated on (harness.cost.cpu_model): floors compare on one kind of CPU."""

from __future__ import annotations

from pathlib import Path

from harness.cost import cpu_model


def test_the_model_name_of_proc_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu\n\n"
                    "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\n")
    assert cpu_model(info) == " of an Intel(R) Xeon(R) Processor"
    info.write_text("model name\t: AMD Ryzen 9 7950X 16-Core Processor\n")
    assert cpu_model(info) == " of an AMD Ryzen 9 7950X 16-Core Processor"
    info.write_text("model name\t: Genuine CPU\n")
    assert cpu_model(info) == " of a Genuine CPU"
    info.write_text("processor\t: 0\n")
    assert cpu_model(info) == ""
    assert cpu_model(tmp_path / "missing") == ""
