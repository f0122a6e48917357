"""The simulated agencies: ids, display names (Chinese, with English) and GB/T 2260 regions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgencySpec:
    """An agency to create: id, display name and GB/T 2260 region code."""

    id: str
    display_name: str
    region_code: str


ROSTER: tuple[AgencySpec, ...] = (
    AgencySpec("gd-health", "广东省卫生健康委员会 (Guangdong Provincial Health Commission)",
               "440000"),
    AgencySpec("sz-market", "深圳市市场监督管理局 (Shenzhen Market Regulation Bureau)", "440300"),
    AgencySpec("zj-stats", "浙江省统计局 (Zhejiang Provincial Bureau of Statistics)", "330000"),
    AgencySpec("js-civil", "江苏省民政厅 (Jiangsu Provincial Department of Civil Affairs)",
               "320000"),
    AgencySpec("sc-traffic",
               "成都市公安局交通管理局 (Chengdu Public Security Traffic Management Bureau)",
               "510100"),
    AgencySpec("bj-ecology", "北京市生态环境局 (Beijing Municipal Ecology and Environment Bureau)",
               "110000"),
    AgencySpec("gd-miit",
               "广东省工业和信息化厅 (Guangdong Department of Industry and Information Technology)",
               "440000"),
)
"""Every simulated agency, the ones the demo scenario cannot do without first."""

MINIMUM = 6
"""Every step of the scenario runs among the first six agencies (bj-ecology makes the large
fetch); the seventh, gd-miit, adds one automatic grant."""


def roster(count: int = len(ROSTER)) -> list[AgencySpec]:
    """The first `count` agencies of the roster (MINIMUM to all of them)."""
    if not MINIMUM <= count <= len(ROSTER):
        raise ValueError(f"the demo runs {MINIMUM} to {len(ROSTER)} agencies, not {count}")
    return list(ROSTER[:count])
