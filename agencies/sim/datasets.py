"""The simulated agencies' datasets: manifest metadata and deterministic synthetic content.

Every generator draws from `random.Random(f"{seed}:{dataset}:{version}")`, so one seed always
yields the same bytes (and SHA-256) for each version. Content comes as an iterator of chunks:
the large traffic dataset is produced row by row up to the requested size, so memory stays
bounded however large it is.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gateway.v1 import catalog_pb2 as c
from govshare.signing import StreamHasher

CHUNK_CHARS = 256 * 1024
"""Characters of text gathered before a chunk is encoded and handed on."""

Row = Sequence[object]
Rows = Callable[[random.Random, int], Iterator[Row]]
"""A row generator: (random source, version) -> rows in schema order."""


@dataclass(frozen=True)
class Field:
    """A schema field: name, value type, meaning, sensitivity."""

    name: str
    type: int
    description: str
    sensitivity: int = c.SENSITIVITY_NONE


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset an agency owns: what its manifest says, and how its content is generated."""

    owner: str
    id: str
    title: str
    abstract: str
    fields: tuple[Field, ...]
    classification: int
    sharing_type: int
    update_cycle: int
    tags: tuple[str, ...]
    rows: Rows = field(repr=False)
    media_type: int = c.MEDIA_TYPE_CSV
    sharing_conditions: str = ""
    legal_basis: str = ""
    large: bool = False
    """Endless rows, cut at the requested size: the dataset used for streaming."""

    @property
    def name(self) -> str:
        return f"agencies/{self.owner}/datasets/{self.id}"

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def personal_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.sensitivity != c.SENSITIVITY_NONE]

    def manifest(self) -> c.Manifest:
        """The manifest template: everything but version, content hash, size and time."""
        return c.Manifest(
            dataset=self.name, title=self.title, abstract=self.abstract,
            media_type=self.media_type,
            schema=[c.SchemaField(name=f.name, type=f.type, description=f.description,
                                  sensitivity=f.sensitivity) for f in self.fields],
            classification=self.classification, sharing_type=self.sharing_type,
            sharing_conditions=self.sharing_conditions, legal_basis=self.legal_basis,
            update_cycle=self.update_cycle, tags=list(self.tags),
        )

    def chunks(self, seed: int, version: int, large_bytes: int = 0) -> Iterator[bytes]:
        """The content of `version`, in chunks; `large_bytes` is the size of a large dataset."""
        rng = random.Random(f"{seed}:{self.name}:{version}")
        lines = self._lines(self.rows(rng, version))
        limit = large_bytes if self.large else 0
        return _chunked(lines, limit)

    def digest(self, seed: int, version: int, large_bytes: int = 0) -> tuple[bytes, int]:
        """SHA-256 and size of the content of `version`."""
        hasher = StreamHasher()
        for chunk in self.chunks(seed, version, large_bytes):
            hasher.update(chunk)
        return hasher.digest(), hasher.size

    def _lines(self, rows: Iterator[Row]) -> Iterator[str]:
        names = self.field_names
        if self.media_type == c.MEDIA_TYPE_JSON_LINES:
            for row in rows:
                yield json.dumps(dict(zip(names, row, strict=True)), ensure_ascii=False) + "\n"
            return
        yield ",".join(names) + "\n"
        for row in rows:
            yield ",".join(map(str, row)) + "\n"


def _chunked(lines: Iterator[str], limit: int) -> Iterator[bytes]:
    """Encode lines into chunks of about CHUNK_CHARS; stop after `limit` bytes if given."""
    batch: list[str] = []
    gathered = sent = 0
    for line in lines:
        batch.append(line)
        gathered += len(line)
        if gathered >= CHUNK_CHARS:
            chunk = "".join(batch).encode()
            yield chunk
            sent += len(chunk)
            batch, gathered = [], 0
            if limit and sent >= limit:
                return
    if batch:
        yield "".join(batch).encode()


# -- regions -----------------------------------------------------------------------------------

GUANGDONG_COUNTIES = (
    ("440103", "荔湾区"), ("440104", "越秀区"), ("440105", "海珠区"), ("440106", "天河区"),
    ("440111", "白云区"), ("440303", "罗湖区"), ("440304", "福田区"), ("440305", "南山区"),
    ("440306", "宝安区"), ("440307", "龙岗区"), ("440402", "香洲区"), ("440604", "禅城区"),
    ("440605", "南海区"), ("440606", "顺德区"), ("441302", "惠城区"), ("441900", "东莞市"),
    ("442000", "中山市"), ("440802", "赤坎区"), ("445102", "湘桥区"), ("440203", "武江区"),
)
SHENZHEN_DISTRICTS = (
    ("440303", "罗湖区"), ("440304", "福田区"), ("440305", "南山区"), ("440306", "宝安区"),
    ("440307", "龙岗区"), ("440308", "盐田区"), ("440309", "龙华区"), ("440310", "坪山区"),
    ("440311", "光明区"),
)
ZHEJIANG_COUNTIES = (
    ("330102", "上城区"), ("330105", "拱墅区"), ("330106", "西湖区"), ("330108", "滨江区"),
    ("330109", "萧山区"), ("330110", "余杭区"), ("330122", "桐庐县"), ("330127", "淳安县"),
    ("330182", "建德市"), ("330203", "海曙区"), ("330212", "鄞州区"), ("330281", "余姚市"),
    ("330302", "鹿城区"), ("330381", "瑞安市"), ("330402", "南湖区"), ("330502", "吴兴区"),
    ("330602", "越城区"), ("330702", "婺城区"), ("330782", "义乌市"), ("330802", "柯城区"),
    ("330902", "定海区"), ("331002", "椒江区"), ("331102", "莲都区"),
)
JIANGSU_COUNTIES = (
    ("320102", "玄武区"), ("320104", "秦淮区"), ("320111", "浦口区"), ("320205", "锡山区"),
    ("320282", "宜兴市"), ("320303", "云龙区"), ("320382", "邳州市"), ("320402", "天宁区"),
    ("320505", "虎丘区"), ("320581", "常熟市"), ("320583", "昆山市"), ("320602", "崇川区"),
    ("320703", "连云区"), ("320803", "淮安区"), ("320902", "亭湖区"), ("321002", "广陵区"),
    ("321102", "京口区"), ("321202", "海陵区"), ("321302", "宿城区"),
)
BEIJING_DISTRICTS = (
    ("110101", "东城区"), ("110102", "西城区"), ("110105", "朝阳区"), ("110106", "丰台区"),
    ("110107", "石景山区"), ("110108", "海淀区"), ("110111", "房山区"), ("110112", "通州区"),
    ("110113", "顺义区"), ("110114", "昌平区"), ("110115", "大兴区"), ("110116", "怀柔区"),
)
CHENGDU_DISTRICTS = (
    ("510104", "锦江区"), ("510105", "青羊区"), ("510106", "金牛区"), ("510107", "武侯区"),
    ("510108", "成华区"), ("510112", "龙泉驿区"), ("510113", "青白江区"), ("510114", "新都区"),
    ("510115", "温江区"), ("510116", "双流区"), ("510117", "郫都区"),
)
GUANGDONG_CITIES = (
    ("440100", "广州市"), ("440300", "深圳市"), ("440400", "珠海市"), ("440500", "汕头市"),
    ("440600", "佛山市"), ("440700", "江门市"), ("440800", "湛江市"), ("441300", "惠州市"),
    ("441900", "东莞市"), ("442000", "中山市"),
)

BASE_DAY = date(2025, 1, 1)


def _month(version: int) -> date:
    """The first day of the month a monthly version reports on."""
    months = BASE_DAY.month - 1 + version - 1
    return date(BASE_DAY.year + months // 12, months % 12 + 1, 1)


def _quarter(version: int) -> str:
    quarters = version - 1
    return f"{BASE_DAY.year + quarters // 4}Q{quarters % 4 + 1}"


# -- unified social credit codes (GB 32100-2015) -------------------------------------------------

_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code(rng: random.Random, region_code: str) -> str:
    """A well-formed 18-character unified social credit code of an enterprise in a region."""
    body = "91" + region_code + "".join(rng.choice(_CREDIT_CHARS) for _ in range(9))
    total = sum(_CREDIT_CHARS.index(ch) * w for ch, w in zip(body, _CREDIT_WEIGHTS, strict=True))
    return body + _CREDIT_CHARS[(31 - total % 31) % 31]


# -- row generators ------------------------------------------------------------------------------

def _hospital_beds(rng: random.Random, version: int) -> Iterator[Row]:
    month = _month(version).isoformat()
    for code, name in GUANGDONG_COUNTIES:
        hospitals = rng.randint(8, 60)
        beds = hospitals * rng.randint(120, 420)
        yield (code, name, month, hospitals, beds, beds * rng.randint(2, 6) // 100,
               f"{rng.uniform(0.62, 0.96):.3f}")


_ICD10 = ("I10", "E11", "J18", "I63", "K35", "N39", "J44", "I21", "S72", "O80")


def _inpatient_admissions(rng: random.Random, version: int) -> Iterator[Row]:
    day = BASE_DAY + timedelta(days=version - 1)
    for number in range(600):
        yield (f"ADM{day:%Y%m%d}{number:05d}", f"P{rng.getrandbits(48):012x}",
               f"{rng.randint(0, 17) * 5}-{rng.randint(0, 17) * 5 + 4}", rng.choice("MF"),
               rng.choice(GUANGDONG_COUNTIES)[0], rng.choice(_ICD10), day.isoformat(),
               rng.randint(1, 21))


_TRADE_WORDS = ("华信", "创维", "鹏城", "前海", "智联", "海纳", "星河", "汇通", "瑞丰", "锦程")
_INDUSTRIES = (("I65", "信息技术服务"), ("C39", "电子设备制造"), ("F51", "批发"),
               ("L72", "商务服务"), ("M73", "研究和试验发展"), ("H62", "餐饮"))
_ENTERPRISE_TYPES = ("有限责任公司", "股份有限公司", "个人独资企业", "合伙企业")


def _enterprise_registrations(rng: random.Random, version: int) -> Iterator[Row]:
    day = BASE_DAY + timedelta(days=version - 1)
    for _ in range(900):
        code, _district = rng.choice(SHENZHEN_DISTRICTS)
        industry, activity = rng.choice(_INDUSTRIES)
        yield (credit_code(rng, "440300"),
               f"深圳市{rng.choice(_TRADE_WORDS)}{rng.choice(_TRADE_WORDS)}{activity}有限公司",
               rng.choice(_ENTERPRISE_TYPES), industry, f"{rng.lognormvariate(5, 1.2):.2f}",
               code, day.isoformat(), rng.choices(("存续", "注销"), (97, 3))[0])


def _county_population(rng: random.Random, version: int) -> Iterator[Row]:
    year = BASE_DAY.year - 1 + version - 1
    for code, name in ZHEJIANG_COUNTIES:
        population = rng.randint(300_000, 2_100_000)
        yield (code, name, year, population, population * rng.randint(45, 98) // 100,
               population * rng.randint(55, 95) // 10_000,
               population * rng.randint(50, 80) // 10_000)


def _regional_gdp(rng: random.Random, version: int) -> Iterator[Row]:
    quarter = _quarter(version)
    for code, name in ZHEJIANG_COUNTIES:
        primary, secondary = rng.uniform(0.5, 8), rng.uniform(30, 55)
        yield (code, name, quarter, f"{rng.uniform(80, 900):.2f}", f"{primary:.1f}",
               f"{secondary:.1f}", f"{100 - primary - secondary:.1f}")


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗"


def _minimum_living_allowance(rng: random.Random, version: int) -> Iterator[Row]:
    month = _month(version)
    for number in range(1200):
        start = month - timedelta(days=rng.randint(30, 2000))
        yield (f"JSDB{number:07d}", f"{rng.choice(_SURNAMES)}**", f"{rng.getrandbits(128):032x}",
               rng.randint(1, 6), rng.choice(JIANGSU_COUNTIES)[0],
               f"{rng.randint(5, 12) * 100 + rng.randint(0, 99):.2f}", start.isoformat())


def _elderly_care_institutions(rng: random.Random, version: int) -> Iterator[Row]:
    for code, name in JIANGSU_COUNTIES:
        for number in range(rng.randint(2, 6)):
            beds = rng.randint(60, 800)
            yield (f"{name}第{number + 1}养老院", code, rng.choice(("公办", "民办", "公建民营")),
                   beds, beds * rng.randint(50, 95) // 100, beds // rng.randint(4, 9))


_STATIONS = tuple((f"BJ{number:03d}", f"{name}监测站", code)
                  for number, (code, name) in enumerate(BEIJING_DISTRICTS, 1))


def _air_quality(rng: random.Random, version: int) -> Iterator[Row]:
    start = datetime(2025, 1, 6, tzinfo=UTC) + timedelta(days=7 * (version - 1))
    for hour in range(7 * 24):
        observed = (start + timedelta(hours=hour)).isoformat()
        for station, name, district in _STATIONS:
            pm25 = round(rng.lognormvariate(3.4, 0.6), 1)
            yield (station, name, district, observed, min(500, int(pm25 * 1.4) + 10), pm25,
                   round(pm25 * rng.uniform(1.2, 1.9), 1), round(rng.uniform(10, 80), 1),
                   round(rng.uniform(2, 15), 1), round(rng.uniform(20, 160), 1),
                   round(rng.uniform(0.3, 2.0), 2))


_APPROACHES = ("N", "E", "S", "W")
_INTERSECTIONS = tuple((f"CD{number:04d}", CHENGDU_DISTRICTS[number % len(CHENGDU_DISTRICTS)][0])
                       for number in range(1, 401))


def _traffic_counts(rng: random.Random, version: int) -> Iterator[Row]:
    """Five-minute counts per intersection approach, for as long as the consumer reads."""
    start = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=version - 1)
    interval = 0
    while True:
        observed = (start + timedelta(minutes=5 * interval)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for intersection, district in _INTERSECTIONS:
            for approach in _APPROACHES:
                vehicles = rng.randint(5, 240)
                yield (intersection, district, observed, approach, vehicles,
                       vehicles * rng.randint(0, 20) // 100, rng.randint(80, 650) / 10)
        interval += 1


_VIOLATIONS = (("1039", "违反禁令标志", 100), ("1208", "超速不到20%", 200), ("1625", "闯红灯", 200),
               ("1344", "违法停车", 150), ("6050", "不按导向车道行驶", 100))


def _traffic_violations(rng: random.Random, version: int) -> Iterator[Row]:
    day = datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=version - 1)
    for number in range(700):
        code, _meaning, fine = rng.choice(_VIOLATIONS)
        plate = "川A" + "".join(rng.choice(_CREDIT_CHARS[:10] + "ABCDEFGHJK") for _ in range(5))
        observed = day + timedelta(seconds=rng.randint(0, 86_399))
        yield (f"CDWF{version:04d}{number:06d}", plate, f"{rng.getrandbits(128):032x}", code,
               rng.choice(_INTERSECTIONS)[0], observed.strftime("%Y-%m-%dT%H:%M:%SZ"), fine)


def _platforms(rng: random.Random, version: int) -> Iterator[Row]:
    for number in range(40):
        code, city = rng.choice(GUANGDONG_CITIES)
        national = number < 6
        yield (f"{city}{rng.choice(_TRADE_WORDS)}工业互联网平台", credit_code(rng, code), code,
               "国家级" if national else "省级",
               rng.randint(200_000, 9_000_000) if national else rng.randint(5_000, 400_000),
               rng.randint(1_000, 120_000), rng.randint(50, 6_000))


_MANUFACTURING = ("C26", "C34", "C35", "C36", "C38", "C39")


def _digital_transformation(rng: random.Random, version: int) -> Iterator[Row]:
    quarter = _quarter(version)
    for code, city in GUANGDONG_CITIES:
        for industry in _MANUFACTURING:
            yield (code, city, industry, quarter, rng.randint(80, 2_500),
                   f"{rng.uniform(70, 95):.1f}", f"{rng.uniform(50, 75):.1f}",
                   f"{rng.uniform(40, 85):.1f}", rng.randint(10, 900))


# -- the catalogue -------------------------------------------------------------------------------

S, N, D, T, TS = (c.FIELD_TYPE_STRING, c.FIELD_TYPE_INTEGER, c.FIELD_TYPE_DECIMAL,
                  c.FIELD_TYPE_DATE, c.FIELD_TYPE_TIMESTAMP)
PERSONAL, SENSITIVE = c.SENSITIVITY_PERSONAL, c.SENSITIVITY_SENSITIVE_PERSONAL
REGION = Field("region_code", S, "GB/T 2260 county-level division code")
REGION_NAME = Field("region_name", S, "Name of the division")

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "gd-health", "hospital-beds", "广东省医院床位资源月报 (Hospital bed capacity by county)",
        "Hospitals, beds, ICU beds and bed occupancy per county-level division of Guangdong, "
        "reported monthly by the provincial health commission.",
        (REGION, REGION_NAME, Field("report_month", T, "First day of the month reported"),
         Field("hospitals", N, "Hospitals in operation"),
         Field("beds_total", N, "Approved inpatient beds"), Field("beds_icu", N, "ICU beds"),
         Field("occupancy_rate", D, "Average bed occupancy, 0 to 1")),
        c.CLASSIFICATION_INTERNAL, c.SHARING_TYPE_CONDITIONAL, c.UPDATE_CYCLE_MONTHLY,
        ("health", "hospital", "beds", "emergency"), _hospital_beds,
        sharing_conditions="For public services and emergency response planning only.",
    ),
    DatasetSpec(
        "gd-health", "inpatient-admissions", "住院病案首页摘要 (Inpatient admissions)",
        "One row per hospital admission in Guangdong: pseudonymous patient, age band, sex, "
        "division, ICD-10 diagnosis and length of stay.",
        (Field("admission_id", S, "Admission number"),
         Field("patient_pseudonym", S, "Stable pseudonym of the patient", PERSONAL),
         Field("age_band", S, "Five-year age band", PERSONAL),
         Field("sex", S, "M or F", PERSONAL), REGION,
         Field("diagnosis_icd10", S, "Principal diagnosis, ICD-10", SENSITIVE),
         Field("admit_date", T, "Date of admission"),
         Field("length_of_stay_days", N, "Days in hospital")),
        c.CLASSIFICATION_INTERNAL, c.SHARING_TYPE_CONDITIONAL, c.UPDATE_CYCLE_DAILY,
        ("health", "inpatient", "diagnosis"), _inpatient_admissions,
        sharing_conditions="Personal health information: only for treatment continuity and "
        "emergency response, never for statistics.",
        legal_basis="《中华人民共和国基本医疗卫生与健康促进法》第九十二条",
    ),
    DatasetSpec(
        "sz-market", "enterprise-registrations",
        "深圳市商事主体登记信息 (Enterprise registrations)",
        "Enterprises registered in Shenzhen each day: unified social credit code, name, type, "
        "industry (GB/T 4754), registered capital, district, status.",
        (Field("unified_social_credit_code", S, "18-character code, GB 32100-2015"),
         Field("enterprise_name", S, "Registered name"),
         Field("enterprise_type", S, "Legal form"),
         Field("industry_code", S, "Industry class, GB/T 4754-2017"),
         Field("registered_capital_wan", D, "Registered capital, 10,000 yuan"),
         Field("district_code", S, "GB/T 2260 district code"),
         Field("establish_date", T, "Date of establishment"),
         Field("status", S, "存续 (active) or 注销 (deregistered)")),
        c.CLASSIFICATION_PUBLIC, c.SHARING_TYPE_UNCONDITIONAL, c.UPDATE_CYCLE_DAILY,
        ("enterprise", "registration", "market"), _enterprise_registrations,
    ),
    DatasetSpec(
        "zj-stats", "county-population", "浙江省县级常住人口 (Resident population by county)",
        "Resident and urban population, births and deaths per county-level division of "
        "Zhejiang, from the annual population sample survey.",
        (REGION, REGION_NAME, Field("year", N, "Reference year"),
         Field("resident_population", N, "Resident population at year end"),
         Field("urban_population", N, "Urban resident population"),
         Field("births", N, "Births in the year"), Field("deaths", N, "Deaths in the year")),
        c.CLASSIFICATION_PUBLIC, c.SHARING_TYPE_UNCONDITIONAL, c.UPDATE_CYCLE_YEARLY,
        ("population", "census", "statistics"), _county_population,
    ),
    DatasetSpec(
        "zj-stats", "regional-gdp", "浙江省县级地区生产总值 (Quarterly GDP by county)",
        "Gross domestic product per county-level division of Zhejiang with the shares of the "
        "primary, secondary and tertiary sectors.",
        (REGION, REGION_NAME, Field("quarter", S, "Reference quarter, e.g. 2025Q1"),
         Field("gdp_100m_yuan", D, "GDP, 100 million yuan"),
         Field("primary_share", D, "Primary sector, percent"),
         Field("secondary_share", D, "Secondary sector, percent"),
         Field("tertiary_share", D, "Tertiary sector, percent")),
        c.CLASSIFICATION_PUBLIC, c.SHARING_TYPE_UNCONDITIONAL, c.UPDATE_CYCLE_QUARTERLY,
        ("gdp", "economy", "statistics"), _regional_gdp,
    ),
    DatasetSpec(
        "js-civil", "minimum-living-allowance",
        "城乡最低生活保障对象名册 (Minimum living allowance recipients)",
        "Households receiving the minimum living allowance (低保) in Jiangsu: recipient, "
        "household size, division, monthly allowance and start date.",
        (Field("recipient_id", S, "Recipient number", PERSONAL),
         Field("name_masked", S, "Surname of the head of household", PERSONAL),
         Field("id_number_hash", S, "Hash of the resident identity card number", SENSITIVE),
         Field("household_size", N, "Members of the household"), REGION,
         Field("monthly_allowance_yuan", D, "Monthly allowance, yuan"),
         Field("start_date", T, "Date the allowance started")),
        c.CLASSIFICATION_CONFIDENTIAL, c.SHARING_TYPE_NOT_SHARED, c.UPDATE_CYCLE_MONTHLY,
        ("social-assistance", "dibao", "welfare"), _minimum_living_allowance,
        legal_basis="《社会救助暂行办法》第六十六条 (Interim Measures for Social Assistance, "
        "art. 66): recipients' personal information is kept confidential.",
    ),
    DatasetSpec(
        "js-civil", "elderly-care-institutions", "江苏省养老机构名录 (Elderly care institutions)",
        "Elderly care institutions in Jiangsu with their operator type, beds, residents and "
        "nursing staff.",
        (Field("institution_name", S, "Name of the institution"), REGION,
         Field("operator_type", S, "公办, 民办 or 公建民营"), Field("beds", N, "Beds"),
         Field("residents", N, "Residents"), Field("nursing_staff", N, "Nursing staff")),
        c.CLASSIFICATION_PUBLIC, c.SHARING_TYPE_UNCONDITIONAL, c.UPDATE_CYCLE_QUARTERLY,
        ("elderly-care", "civil-affairs"), _elderly_care_institutions,
    ),
    DatasetSpec(
        "bj-ecology", "air-quality-hourly", "北京市空气质量小时数据 (Hourly air quality)",
        "Hourly AQI and pollutant concentrations (µg/m³, CO in mg/m³) at Beijing's monitoring "
        "stations, one week per version.",
        (Field("station_id", S, "Monitoring station"), Field("station_name", S, "Station name"),
         Field("district_code", S, "GB/T 2260 district code"),
         Field("observed_at", TS, "Hour observed"), Field("aqi", N, "Air quality index"),
         Field("pm25", D, "PM2.5"), Field("pm10", D, "PM10"), Field("no2", D, "NO2"),
         Field("so2", D, "SO2"), Field("o3", D, "O3"), Field("co", D, "CO")),
        c.CLASSIFICATION_PUBLIC, c.SHARING_TYPE_UNCONDITIONAL, c.UPDATE_CYCLE_HOURLY,
        ("air-quality", "environment", "pm25"), _air_quality, media_type=c.MEDIA_TYPE_JSON_LINES,
    ),
    DatasetSpec(
        "sc-traffic", "traffic-counts", "成都市路口交通流量 (Intersection traffic counts)",
        "Five-minute vehicle counts, heavy-vehicle counts and mean speeds per approach at 400 "
        "signalised intersections in Chengdu.",
        (Field("intersection_id", S, "Intersection"),
         Field("district_code", S, "GB/T 2260 district code"),
         Field("observed_at", TS, "End of the five-minute interval"),
         Field("approach", S, "N, E, S or W"), Field("vehicles", N, "Vehicles counted"),
         Field("heavy_vehicles", N, "Heavy vehicles counted"),
         Field("mean_speed_kmh", D, "Mean speed, km/h")),
        c.CLASSIFICATION_INTERNAL, c.SHARING_TYPE_CONDITIONAL, c.UPDATE_CYCLE_REAL_TIME,
        ("traffic", "transport", "sensors"), _traffic_counts, large=True,
        sharing_conditions="For traffic management, environmental policy and statistics; "
        "access may be withdrawn when the stated work ends.",
    ),
    DatasetSpec(
        "sc-traffic", "traffic-violations", "成都市交通违法记录 (Traffic violation records)",
        "Traffic violations recorded by enforcement cameras in Chengdu: plate, hashed driving "
        "licence number, violation code, place, time and fine.",
        (Field("record_id", S, "Record number"),
         Field("plate_number", S, "Vehicle plate", PERSONAL),
         Field("licence_number_hash", S, "Hash of the driving licence number", SENSITIVE),
         Field("violation_code", S, "Violation code of the traffic administration"),
         Field("intersection_id", S, "Where the violation was recorded"),
         Field("observed_at", TS, "When it was recorded"), Field("fine_yuan", N, "Fine, yuan")),
        c.CLASSIFICATION_INTERNAL, c.SHARING_TYPE_NOT_SHARED, c.UPDATE_CYCLE_DAILY,
        ("traffic", "enforcement"), _traffic_violations,
        legal_basis="《中华人民共和国个人信息保护法》第三十四条 (Personal Information Protection "
        "Law, art. 34): processed only within the traffic administration's statutory duties.",
    ),
    DatasetSpec(
        "gd-miit", "industrial-internet-platforms", "广东省工业互联网平台监测 (Industrial internet "
        "platforms)",
        "National and provincial industrial internet platforms in Guangdong with connected "
        "devices, enterprises served and industrial apps, as the MIIT five-year plan tracks.",
        (Field("platform_name", S, "Platform"), Field("operator_credit_code", S,
                                                      "Operator's unified social credit code"),
         Field("city_code", S, "GB/T 2260 city code"), Field("tier", S, "国家级 or 省级"),
         Field("connected_devices", N, "Industrial devices connected"),
         Field("served_enterprises", N, "Enterprises served"),
         Field("industrial_apps", N, "Industrial apps on the platform")),
        c.CLASSIFICATION_PUBLIC, c.SHARING_TYPE_UNCONDITIONAL, c.UPDATE_CYCLE_QUARTERLY,
        ("industrial-internet", "miit", "manufacturing"), _platforms,
    ),
    DatasetSpec(
        "gd-miit", "enterprise-digital-transformation", "制造业企业数字化转型指标 (Enterprise "
        "digital transformation)",
        "Per city and manufacturing industry: adoption of digital R&D design tools, numerical "
        "control of key processes, cloud use and industrial internet platform users.",
        (Field("city_code", S, "GB/T 2260 city code"), Field("city_name", S, "City"),
         Field("industry_code", S, "Industry class, GB/T 4754-2017"),
         Field("quarter", S, "Reference quarter"),
         Field("enterprises_surveyed", N, "Enterprises in the survey"),
         Field("digital_rd_tool_rate", D, "数字化研发设计工具普及率, percent"),
         Field("key_process_nc_rate", D, "关键工序数控化率, percent"),
         Field("cloud_adoption_rate", D, "Enterprises using cloud services, percent"),
         Field("platform_users", N, "Enterprises using an industrial internet platform")),
        c.CLASSIFICATION_INTERNAL, c.SHARING_TYPE_CONDITIONAL, c.UPDATE_CYCLE_QUARTERLY,
        ("digital-transformation", "miit", "manufacturing"), _digital_transformation,
        sharing_conditions="For policy making and statistics by government departments.",
    ),
)


def owned_by(agency_id: str) -> list[DatasetSpec]:
    """The datasets one agency publishes."""
    return [spec for spec in DATASETS if spec.owner == agency_id]


def dataset(name: str) -> DatasetSpec:
    """A dataset by resource name ("agencies/{agency}/datasets/{dataset}")."""
    for spec in DATASETS:
        if spec.name == name:
            return spec
    raise KeyError(name)
