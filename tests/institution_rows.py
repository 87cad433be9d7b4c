"""Registry rows for tests: one valid row to vary, and files written in each encoding the bureau uses."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

from zjcare_guide.registry_import import HEADERS
from zjcare_guide.towns import TOWNS


def row(n: int = 1, **changes: Any) -> dict[str, str]:
    base = {"备案编号": f"ZJ-TEST-{n:04d}", "机构名称": f"测试托育园{n}号", "机构类型": "社区托育", "是否普惠": "是",
            "所属镇街": "暨阳街道", "地址": f"诸暨市暨阳街道测试路{n}号", "经度": "120.237", "纬度": "29.712",
            "联系电话": "0575-00000000", "服务形式": "全日托、计时托", "招收月龄": "6-36", "班型": "乳儿班、托小班",
            "托位数": "40", "空余托位": "5", "空余更新日期": "2026-11-20", "收费标准": "2000元/月",
            "开放时间": "周一至周五 7:30-17:30", "状态": "备案"}
    base.update({k: str(v) for k, v in changes.items()})
    return base


def random_rows(count: int, seed: int = 7) -> list[dict[str, str]]:
    """Institutions scattered over Zhuji's box, with varied filters (for agreement with a scan)."""
    rng = random.Random(seed)
    forms = ["全日托", "半日托", "计时托", "临时托"]
    out = []
    for n in range(count):
        age_min = rng.choice([0, 6, 12, 18, 24])
        capacity = rng.randint(10, 120)
        out.append(row(n, 经度=f"{rng.uniform(119.86, 120.59):.6f}", 纬度=f"{rng.uniform(29.31, 30.04):.6f}",
                       所属镇街=rng.choice(TOWNS).name, 是否普惠=rng.choice("是否"),
                       服务形式="、".join(rng.sample(forms, rng.randint(1, 3))), 招收月龄=f"{age_min}-36", 班型="",
                       托位数=capacity, 空余托位=rng.randint(0, capacity),
                       空余更新日期=rng.choice(["2026-11-25", "2026-10-01"]),
                       状态=rng.choice(["备案"] * 8 + ["整改中", "注销"])))
    return out


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str = "utf-8",
              headers: tuple[str, ...] = HEADERS) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(headers)
    for r in rows:
        writer.writerow([r.get(h, "") for h in headers])
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[dict[str, str]], headers: tuple[str, ...] = HEADERS,
               merge_header: bool = False) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(headers))
    for r in rows:
        # Numbers as numbers, as Excel holds them: the importer must read 40.0 as 40.
        sheet.append([float(r[h]) if h in ("经度", "纬度", "托位数", "空余托位") and r.get(h) else r.get(h, "")
                      for h in headers])
    if merge_header:
        sheet.merge_cells("A1:B1")
    book.save(str(path))
    return path
