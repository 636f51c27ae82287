"""A realistic demo tenant, so a newcomer sees the product at once (``guanxi demo``, ``make run``).

:func:`load_demo` creates (if missing) a tenant with eight staff users and a few hundred customers
with Chinese and English names, phones, emails, companies, owners and sources; identities on
WeCom, Douyin and email (nicknames, avatars, follower counts, shared union ids); about six months
of interactions; stage histories that walk the default pipeline with a funnel-shaped drop-off;
grouped tags, tasks (some overdue, some done) and consents.

The same ``seed`` (and ``now``) gives the same data; only the row ids (UUIDv7) differ. Everything
is generated in memory first and written with bulk ``insert(Model)`` statements in one
transaction, so a load is fast (300 customers in well under a second on SQLite) and all-or-nothing.
The rows satisfy the same invariants the services keep: ``search_text`` built by
:func:`guanxi.core.services.customers.search_text` (names, phones, emails, nicknames), one
ContactPoint per phone and email, a stage history whose latest change leads to
``Customer.stage_id``, ``last_interaction_at`` equal to the newest interaction, and ``created_at``
before the first interaction. Event hooks are not fired for demo rows (they are sample data, not
business events); one audit entry ``demo.load`` records the load.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
from sqlalchemy import func, insert, select

from guanxi.core.base.context import Actor, RequestContext
from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import (
    Consent,
    ContactPoint,
    Customer,
    CustomerFieldValue,
    CustomerTag,
    FieldDefinition,
    Identity,
    Interaction,
    Stage,
    StageChange,
    Tag,
    Task,
    Tenant,
    User,
    utcnow,
)
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import search_text
from guanxi.core.services.pipelines import create_tenant, default_pipeline, stages_of
from guanxi.core.storage.bulk import insert_rows
from guanxi.core.storage.statistics import refresh_statistics
from guanxi.core.storage.tenancy import unscoped

__all__ = ["DemoSummary", "load_demo"]

DEMO_ACTOR = Actor(kind="system", name="demo")
HISTORY_DAYS = 182


class DemoSummary(msgspec.Struct, kw_only=True):
    """What :func:`load_demo` did. ``loaded`` is False when ``if_empty`` found customers already
    there (the counts are then zero and ``message`` says so)."""

    tenant_id: uuid.UUID
    slug: str
    loaded: bool
    message: str
    tenant_created: bool = False
    users: int = 0
    customers: int = 0
    contact_points: int = 0
    identities: int = 0
    interactions: int = 0
    stage_changes: int = 0
    tags: int = 0
    customer_tags: int = 0
    tasks: int = 0
    consents: int = 0
    #: customers given a value of the ``grade`` custom field (A/B/C)
    graded: int = 0
    #: deals, contracts and payments (with the sales plugin enabled)
    deals: int = 0
    contracts: int = 0
    payments: int = 0
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------
# Source data
# ------------------------------------------------------------------------------------------------

# fmt: off
STAFF: tuple[tuple[str, str, str, str | None], ...] = (
    # email local part, name, role, team
    ("lin.hui", "林慧", "admin", None),
    ("david.chen", "David Chen", "manager", None),
    ("zhou.min", "周敏", "marketing", None),
    ("wang.lei", "王磊", "sales", "华东组"),
    ("liu.yang", "刘洋", "sales", "华东组"),
    ("emma.li", "Emma Li", "sales", "华南组"),
    ("tom.zhang", "Tom Zhang", "sales", "华南组"),
    ("sun.li", "孙丽", "service", None),
)
STAFF_DOMAIN = "demo.guanxi.dev"

SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"), ("黄", "huang"),
    ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"), ("马", "ma"), ("朱", "zhu"),
    ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"), ("罗", "luo"), ("高", "gao"), ("郑", "zheng"),
    ("梁", "liang"), ("谢", "xie"), ("宋", "song"), ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"),
    ("邓", "deng"), ("曹", "cao"), ("彭", "peng"), ("曾", "zeng"), ("萧", "xiao"), ("田", "tian"), ("董", "dong"),
    ("欧阳", "ouyang"), ("司马", "sima"),
)
GIVEN = (
    ("芳", "fang"), ("伟", "wei"), ("静", "jing"), ("敏", "min"), ("磊", "lei"), ("丽", "li"), ("强", "qiang"),
    ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"),
    ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"),
    ("桂英", "guiying"), ("婷", "ting"), ("浩", "hao"), ("雪", "xue"), ("琳", "lin"), ("晨", "chen"), ("宇", "yu"),
    ("欣怡", "xinyi"), ("子轩", "zixuan"), ("梓涵", "zihan"), ("思远", "siyuan"), ("佳琪", "jiaqi"), ("一诺", "yinuo"),
    ("建国", "jianguo"), ("海燕", "haiyan"), ("志强", "zhiqiang"), ("晓东", "xiaodong"), ("雨桐", "yutong"),
    ("文博", "wenbo"), ("嘉怡", "jiayi"),
)
FIRST_NAMES = (
    "Emma", "Olivia", "Liam", "Noah", "Sophia", "James", "Ava", "Lucas", "Mia", "Ethan", "Grace", "Daniel",
    "Chloe", "Henry", "Zoe", "Jack", "Lily", "Ryan", "Hannah", "Kevin", "Vivian", "Jason", "Cindy", "Eric",
)
LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Anderson", "Thomas", "Martin", "Lee",
    "Walker", "Wong", "Chan", "Tan", "Lim", "Ng", "Müller", "Schmidt", "Garcia", "Rossi", "Dubois", "Kim", "Sato",
)
CITIES = ("上海", "北京", "深圳", "杭州", "广州", "成都", "苏州", "南京", "武汉", "西安")
BRANDS = (
    ("云帆", "yunfan"), ("星辰", "xingchen"), ("蓝海", "lanhai"), ("优品", "youpin"), ("博雅", "boya"),
    ("汇通", "huitong"), ("启明", "qiming"), ("锦程", "jincheng"), ("青木", "qingmu"), ("领航", "linghang"),
    ("智远", "zhiyuan"), ("鼎盛", "dingsheng"), ("众诚", "zhongcheng"), ("华锐", "huarui"),
)
EN_BRANDS = ("Northwind", "Bluebird", "Summit", "Evergreen", "Brightpath", "Redwood", "Silverline", "Harbor", "Lumen", "Atlas")
#: industry tag name → (Chinese company word, domain suffix, English company word)
INDUSTRIES = {
    "教育": ("教育科技", "edu", "Learning"),
    "零售": ("商贸", "shop", "Retail"),
    "金融": ("金融服务", "fin", "Capital"),
    "制造": ("精密制造", "mfg", "Manufacturing"),
    "医疗": ("医疗器械", "med", "Health"),
    "互联网": ("网络科技", "tech", "Digital"),
}
EN_SUFFIXES = ("Ltd", "Inc.", "GmbH", "Pte. Ltd.", "LLC")
PERSONAL_DOMAINS_ZH = ("qq.com", "163.com", "126.com", "foxmail.com", "sina.com")
PERSONAL_DOMAINS_EN = ("gmail.com", "outlook.com", "icloud.com", "yahoo.com", "proton.me")
MOBILE_PREFIXES = ("130", "131", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156", "157", "158", "159",
                   "166", "173", "177", "180", "181", "182", "185", "186", "187", "188", "189", "198", "199")
INTL_PREFIXES = (("+1", "415", 7), ("+44", "20", 8), ("+65", "9", 7), ("+852", "6", 7), ("+61", "4", 8), ("+49", "151", 8))
NICK_WORDS = ("快乐的鱼", "向日葵", "小太阳", "追风少年", "奶茶控", "旅行家", "一只猫", "晴天", "星星", "柠檬不酸", "大白", "早睡早起")
NICK_EMOJI = ("🌸", "✨", "🍀", "🐱", "☀️", "🌙", "")

#: source → weight
SOURCES = (("wecom", 30), ("douyin", 25), ("email", 12), ("referral", 10), ("web", 15), ("event", 8))

ZH_TEXT = {
    "message_in": (
        "你好，想了解一下你们的产品价格", "请问有试用版吗？", "可以发一份报价单给我吗", "我们团队大概20人，适合哪个套餐？",
        "上次说的方案我们内部讨论了一下，还有几个问题", "发票怎么开？", "周三下午方便电话沟通吗", "收到，谢谢！",
        "能不能再优惠一点", "系统支持企业微信登录吗",
    ),
    "message_out": (
        "您好，我是{owner}，很高兴为您服务", "报价单已发到您的邮箱，请查收", "这是我们的产品介绍手册，您可以先看看",
        "本周有限时优惠，年付打八折", "好的，周三下午三点给您打电话", "合同已经准备好了，请您确认", "新功能上线啦，欢迎体验",
        "感谢您的支持，有任何问题随时找我",
    ),
    "comment": (
        "这个多少钱？", "求链接", "已关注，期待更新", "讲得太好了👍", "有没有线下活动？", "想报名试听课", "第三个功能怎么用？",
        "同问，怎么购买", "主播讲得很清楚",
    ),
    "note": (
        "客户对价格比较敏感，需要申请折扣", "决策人是技术总监，下周约演示", "已发送合同，等待法务审核", "客户预算在Q3，届时再跟进",
        "对竞品也在评估中", "客户希望对接企业微信", "老客户介绍，优先跟进",
    ),
    "call": ("电话沟通需求，约了产品演示", "回访使用情况，反馈良好", "未接通，稍后再打", "确认了续费意向", "解答了开票问题"),
    "visit": ("到店参观，体验了产品", "参加了线下沙龙", "来公司做了现场演示", "在展会展台交流"),
    "purchase": ("购买 {plan}",),
}
EN_TEXT = {
    "message_in": (
        "Hi, could you send me your pricing?", "Is there a free trial?", "We are about 20 people, which plan fits us?",
        "Can we schedule a call on Wednesday?", "Thanks, got it!", "Does it integrate with WeCom?", "Any discount for annual billing?",
    ),
    "message_out": (
        "Hi, this is {owner}, happy to help", "I've emailed you the quote", "Here's our product brochure",
        "Annual plans are 20% off this week", "Great, I'll call you on Wednesday at 3pm", "The contract is ready for your review",
    ),
    "comment": ("How much is this?", "Link please!", "Followed, great content", "Love this 👍", "Any offline events soon?"),
    "note": (
        "Price sensitive, needs a discount approval", "Decision maker is the CTO; demo next week", "Contract sent, waiting for legal",
        "Budget opens in Q3, follow up then", "Also evaluating a competitor",
    ),
    "call": ("Discovery call, booked a demo", "Check-in call, happy so far", "No answer, try again later", "Confirmed renewal intent"),
    "visit": ("Visited our showroom", "Came to the meetup", "On-site demo at their office", "Met at the expo booth"),
    "purchase": ("Bought {plan}",),
}
PLANS = (("基础版 月付", "Basic monthly", 99.0), ("专业版 月付", "Pro monthly", 299.0), ("专业版 年付", "Pro yearly", 2990.0),
         ("企业版 年付", "Enterprise yearly", 12800.0), ("培训服务", "Training package", 4999.0), ("增值包", "Add-on pack", 499.0))
CAMPAIGNS = (("2024 新品发布会", "Product launch"), ("双十一大促", "Singles' Day sale"), ("客户成功案例", "Customer stories"),
             ("月度简报", "Monthly newsletter"))
CLICK_URLS = ("https://guanxi.example/pricing", "https://guanxi.example/demo", "https://guanxi.example/blog/wecom-crm",
              "https://guanxi.example/cases")
QRCODES = (("展会-上海", "expo"), ("门店海报", "store"), ("直播间", "live"), ("官网", "website"))
TASKS_ZH = ("回访{name}", "给{name}发送报价", "确认{name}的合同细节", "邀请{name}参加线下活动", "跟进{name}的试用反馈")
TASKS_EN = ("Follow up with {name}", "Send quote to {name}", "Confirm contract details with {name}", "Invite {name} to the meetup",
            "Ask {name} for trial feedback")
TAG_COLORS = {"行业": "#2f80ed", "意向": "#f2994a", "": "#eb5757"}

# fmt: on

#: probability of moving on from each open stage (in order), giving a funnel
ADVANCE = (0.62, 0.6, 0.62)
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
ID_CHARS = ALNUM + "_-"


# ------------------------------------------------------------------------------------------------
# Generation (pure, deterministic for a seed)
# ------------------------------------------------------------------------------------------------


class _Names:
    """The fields :func:`search_text` reads, without building an ORM object."""

    __slots__ = ("company", "display_name", "emails", "phones")

    def __init__(self, display_name: str, company: str | None, phones: list[str], emails: list[str]) -> None:
        self.display_name, self.company, self.phones, self.emails = display_name, company, phones, emails


@dataclass
class _Plan:
    """Every row of one load, as dicts ready for ``insert(Model)``."""

    users: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    contact_points: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)
    interactions: list[dict[str, Any]] = field(default_factory=list)
    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    customer_tags: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Path:
    """The stages of a pipeline a demo customer can walk through."""

    open: list[Stage]
    won: Stage | None
    lost: Stage | None
    retained: Stage | None
    churned: Stage | None

    @classmethod
    def of(cls, stages: list[Stage]) -> _Path:
        by_cat: dict[str, Stage] = {}
        for s in stages:
            by_cat.setdefault(s.category, s)
        return cls(
            [s for s in stages if s.category == "open"],
            by_cat.get("won"),
            by_cat.get("lost"),
            by_cat.get("retained"),
            by_cat.get("churned"),
        )


class _Gen:
    def __init__(self, seed: int, now: dt.datetime, path: _Path, staff: dict[str, uuid.UUID], staff_names: dict[uuid.UUID, str]) -> None:
        self.rng = random.Random(seed)
        self.now = now.astimezone(dt.UTC).replace(microsecond=0)
        self.path = path
        self.staff = staff  # email local part -> user id
        self.staff_names = staff_names
        self.sales = [staff[k] for k, _, role, _ in STAFF if role == "sales"]
        self.service = staff["sun.li"]
        self.plan = _Plan()
        self.tag_ids: dict[str, uuid.UUID] = {}
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()

    # -- small helpers ---------------------------------------------------------------------------

    def token(self, n: int, chars: str = ALNUM) -> str:
        return "".join(self.rng.choice(chars) for _ in range(n))

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        span = max(int((end - start).total_seconds()), 1)
        return start + dt.timedelta(seconds=self.rng.randint(1, span))

    def tag(self, label: str) -> uuid.UUID:
        tag_id = self.tag_ids.get(label)
        if tag_id is None:
            group, _, name = label.rpartition("/")
            tag_id = self.tag_ids[label] = new_id()
            created = self.now - dt.timedelta(days=HISTORY_DAYS + 10)
            self.plan.tags.append(
                {"id": tag_id, "group_name": group, "name": name, "color": TAG_COLORS.get(group, "#9b51e0"), "created_at": created}
            )
        return tag_id

    def unique(self, used: set[str], make: Any) -> str:
        for _ in range(50):
            value = make()
            if value not in used:
                used.add(value)
                return str(value)
        raise RuntimeError("could not make a unique demo value")  # pragma: no cover - 50 collisions in a row

    # -- one customer ----------------------------------------------------------------------------

    def customer(self) -> None:
        rng, now, plan = self.rng, self.now, self.plan
        cid = new_id()
        chinese = rng.random() < 0.68
        industry = rng.choice(list(INDUSTRIES))
        zh_word, dom_suffix, en_word = INDUSTRIES[industry]
        city = rng.choice(CITIES)
        if chinese:
            sur, sur_py = rng.choice(SURNAMES)
            giv, giv_py = rng.choice(GIVEN)
            name = sur + giv
            brand, brand_py = rng.choice(BRANDS)
            company = f"{city}{brand}{zh_word}有限公司" if rng.random() < 0.72 else None
            domain = f"{brand_py}{dom_suffix}.com"

            def email_local() -> str:
                return rng.choice(
                    (f"{giv_py}.{sur_py}", f"{sur_py}{giv_py}", f"{sur_py}{giv_py}{rng.randint(1, 9999)}", f"{giv_py}{rng.randint(80, 99)}")
                )
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name = f"{first} {last}"
            brand = rng.choice(EN_BRANDS)
            company = f"{brand} {en_word} {rng.choice(EN_SUFFIXES)}" if rng.random() < 0.72 else None
            domain = f"{brand.lower()}{dom_suffix}.com"
            ascii_last = last.replace("ü", "ue").lower()

            def email_local() -> str:
                return rng.choice(
                    (f"{first.lower()}.{ascii_last}", f"{first.lower()[0]}{ascii_last}", f"{first.lower()}{rng.randint(1, 999)}")
                )

        # phones: +86 mobiles for most Chinese customers, international numbers for others
        phones: list[str] = []
        n_phones = (1 if rng.random() < 0.85 else 0) if chinese else (1 if rng.random() < 0.5 else 0)
        if n_phones and rng.random() < 0.06:
            n_phones = 2
        for _ in range(n_phones):
            if chinese or rng.random() < 0.3:
                phones.append(self.unique(self.used_phones, lambda: f"+86{rng.choice(MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}"))
            else:
                cc, area, digits = rng.choice(INTL_PREFIXES)
                phones.append(
                    self.unique(
                        self.used_phones, lambda cc=cc, area=area, digits=digits: f"{cc}{area}{rng.randint(0, 10**digits - 1):0{digits}d}"
                    )
                )
        emails: list[str] = []
        if rng.random() < (0.6 if chinese else 0.92):
            personal = PERSONAL_DOMAINS_ZH if chinese else PERSONAL_DOMAINS_EN
            emails.append(
                self.unique(
                    self.used_emails, lambda: f"{email_local()}@{domain if company and rng.random() < 0.5 else rng.choice(personal)}"
                )
            )

        source = rng.choices([s for s, _ in SOURCES], [w for _, w in SOURCES])[0]
        owner = rng.choice(self.sales) if rng.random() < 0.9 else None
        created_at = now - dt.timedelta(days=rng.uniform(1, HISTORY_DAYS - 2))
        created_at = created_at.replace(microsecond=0)

        # -- stage walk: lead → mql → sql → opportunity → won/lost → retained/churned ----------
        walk: list[Stage] = [self.path.open[0]] if self.path.open else []
        for i, stage in enumerate(self.path.open[1:]):
            if rng.random() >= (ADVANCE[i] if i < len(ADVANCE) else 0.6):
                break
            walk.append(stage)
        reached_last_open = len(walk) == len(self.path.open) and len(walk) > 1
        if reached_last_open:
            r = rng.random()
            if r < 0.48 and self.path.won is not None:
                walk.append(self.path.won)
                r2 = rng.random()
                if r2 < 0.45 and self.path.retained is not None:
                    walk.append(self.path.retained)
                elif r2 < 0.62 and self.path.churned is not None:
                    walk.append(self.path.churned)
            elif r < 0.78 and self.path.lost is not None:
                walk.append(self.path.lost)
        times = [created_at]
        for _ in walk[1:]:
            prev = times[-1]
            times.append((prev + (now - prev) * rng.uniform(0.12, 0.45)).replace(microsecond=0))
        prev_stage: uuid.UUID | None = None
        for stage, at in zip(walk, times, strict=True):
            plan.stage_changes.append(
                {
                    "id": new_id(),
                    "customer_id": cid,
                    "from_stage_id": prev_stage,
                    "to_stage_id": stage.id,
                    "changed_at": at,
                    "actor_id": owner if prev_stage is not None else None,
                    "rule": None,
                    "reason": "created"
                    if prev_stage is None
                    else rng.choice(("qualified", "replied", "demo booked", "contract signed", None)),
                }
            )
            prev_stage = stage.id
        final = walk[-1] if walk else None
        category = final.category if final else "open"
        depth = len(walk)
        churned_at = times[-1] if category == "churned" else None

        # -- identities ---------------------------------------------------------------------------
        identities: dict[str, uuid.UUID] = {}
        nicknames: list[str] = []
        followers_max = 0
        has_wecom = source == "wecom" or rng.random() < 0.45
        has_douyin = source == "douyin" or rng.random() < 0.3
        union = f"o{self.token(27, ID_CHARS)}" if has_wecom and has_douyin and rng.random() < 0.5 else None
        first_given = name.split()[0] if not chinese else name[len(name) - 1]
        if has_wecom:
            nick = name if rng.random() < 0.4 else (rng.choice(("小", "阿")) + first_given if chinese else first_given)
            self.identity(
                cid,
                identities,
                "wecom",
                f"wm{self.token(30, ID_CHARS)}",
                union,
                nick,
                None,
                created_at,
                {"add_way": rng.choice(("scan_qrcode", "search_mobile", "share_card", "group_chat")), "remark": name},
            )
            nicknames.append(nick)
        if has_douyin:
            nick = (
                rng.choice(NICK_WORDS) + rng.choice(NICK_EMOJI)
                if chinese or rng.random() < 0.3
                else f"{first_given.lower()}_{rng.randint(1, 999)}"
            )
            followers = rng.randint(100_000, 2_500_000) if rng.random() < 0.04 else int(rng.lognormvariate(4.6, 1.7))
            followers_max = followers
            self.identity(
                cid,
                identities,
                "douyin",
                f"_000{self.token(32)}",
                union,
                nick,
                followers,
                created_at,
                {"city": city, "gender": rng.choice(("male", "female", "unknown"))},
            )
            nicknames.append(nick)
        if emails and (source == "email" or rng.random() < 0.35):
            self.identity(cid, identities, "email", emails[0], None, None, None, created_at, {})

        # -- interactions -------------------------------------------------------------------------
        texts = ZH_TEXT if chinese else EN_TEXT
        owner_name = self.staff_names.get(owner, "") if owner else self.staff_names[self.staff["zhou.min"]]
        end = churned_at or now
        kinds: list[tuple[str, str]] = [("note", "crm"), ("visit", "offline")]
        if phones:
            kinds.append(("call", "phone"))
        if "wecom" in identities:
            kinds += [("message_in", "wecom"), ("message_out", "wecom"), ("message_in", "wecom"), ("scan", "wecom")]
        if "douyin" in identities:
            kinds += [("comment", "douyin"), ("follow", "douyin"), ("message_in", "douyin")]
        if emails:
            kinds += [("email_open", "email"), ("click", "email")]
        kinds.append(("click", "web"))
        first_kind = {
            "wecom": ("scan", "wecom") if "wecom" in identities else ("click", "web"),
            "douyin": ("follow", "douyin") if "douyin" in identities else ("click", "web"),
            "email": ("message_in", "email") if emails else ("click", "web"),
            "referral": ("call", "phone") if phones else ("note", "crm"),
            "web": ("click", "web"),
            "event": ("visit", "offline"),
        }[source]
        events: list[tuple[dt.datetime, str, str]] = [(created_at + dt.timedelta(seconds=rng.randint(60, 3 * 3600)), *first_kind)]
        for _ in range(rng.randint(1, 4) + 3 * depth + rng.randint(0, 3)):
            kind, channel = rng.choice(kinds)
            events.append((self.between(created_at, end), kind, channel))
        if self.path.won is not None and self.path.won in walk:
            won_at = times[walk.index(self.path.won)]
            for _ in range(rng.randint(1, 3 if category != "retained" else 5)):
                events.append((self.between(won_at, end), "purchase", rng.choice(("shop", "wecom"))))
        events.sort()
        spent = 0.0
        for when, kind, channel in events:
            at = min(when, now)
            direction = {"message_out": "out", "call": "out", "note": "internal"}.get(kind, "in")
            payload: dict[str, Any] = {}
            text: str | None = None
            if kind in ("message_in", "message_out", "comment", "note", "call", "visit"):
                text = rng.choice(texts[kind]).format(owner=owner_name)
                if kind == "call":
                    payload = {"duration_s": rng.randint(20, 1800)}
            elif kind == "purchase":
                zh_plan, en_plan, amount = rng.choice(PLANS)
                amount = round(amount * rng.choice((1.0, 1.0, 0.9, 0.8)), 2)
                spent += amount
                text = texts["purchase"][0].format(plan=zh_plan if chinese else en_plan)
                payload = {"amount": amount, "currency": "CNY", "order_id": f"DD{at:%Y%m%d}{rng.randint(10000, 99999)}", "plan": en_plan}
            elif kind == "email_open":
                zh_c, en_c = rng.choice(CAMPAIGNS)
                payload = {"campaign": zh_c if chinese else en_c}
            elif kind == "click":
                payload = {"url": rng.choice(CLICK_URLS)}
            elif kind == "scan":
                code, scene = rng.choice(QRCODES)
                payload = {"qrcode": code, "scene": scene}
            plan.interactions.append(
                {
                    "id": new_id(),
                    "customer_id": cid,
                    "identity_id": identities.get(channel),
                    "channel": channel,
                    "kind": kind,
                    "direction": direction,
                    "occurred_at": at,
                    "recorded_at": at,
                    "text": text,
                    "payload": payload,
                    "dedupe_key": None,
                    "actor_id": owner if direction != "in" else None,
                }
            )
        last_interaction = max(at for at, _, _ in events)
        last_interaction = min(last_interaction, now)

        # -- tags ---------------------------------------------------------------------------------
        labels: list[str] = []
        if company or rng.random() < 0.3:
            labels.append(f"行业/{industry}")
        if category == "open":
            labels.append("意向/高" if depth >= 4 else "意向/中" if depth >= 2 else rng.choice(("意向/低", "意向/中")))
        if spent >= 3000 or followers_max >= 100_000 or (category == "retained" and rng.random() < 0.5):
            labels.append("vip")
        if followers_max >= 100_000:
            labels.append("KOL")
        if category == "churned" or (category in ("won", "retained") and (now - last_interaction).days > 45):
            labels.append("流失风险")
        for label in labels:
            plan.customer_tags.append(
                {"customer_id": cid, "tag_id": self.tag(label), "tagged_at": self.between(created_at, now), "actor_id": owner}
            )

        # -- tasks --------------------------------------------------------------------------------
        if category in ("open", "won", "retained") and rng.random() < 0.4:
            for _ in range(rng.randint(1, 2)):
                due = max(now + dt.timedelta(hours=rng.randint(-24 * 20, 24 * 14)), created_at + dt.timedelta(days=1))
                task_created = max(created_at, due - dt.timedelta(days=rng.randint(2, 10)))
                done = task_created + (due - task_created) * rng.uniform(0.2, 1.0) if due < now and rng.random() < 0.5 else None
                assignee = owner if category == "open" else self.service
                template = rng.choice(TASKS_ZH if chinese else TASKS_EN)
                plan.tasks.append(
                    {
                        "id": new_id(),
                        "customer_id": cid,
                        "assignee_id": assignee or self.sales[0],
                        "title": template.format(name=name),
                        "notes": None,
                        "due_at": due,
                        "done_at": done.replace(microsecond=0) if done else None,
                        "created_at": task_created,
                        "created_by_id": owner or self.staff["david.chen"],
                    }
                )

        # -- consents -----------------------------------------------------------------------------
        if emails and rng.random() < 0.07:
            plan.consents.append(
                {
                    "customer_id": cid,
                    "channel": "email",
                    "status": "opted_out",
                    "source": "unsubscribe link",
                    "changed_at": self.between(created_at, now),
                }
            )
        if "wecom" in identities and rng.random() < 0.25:
            plan.consents.append(
                {"customer_id": cid, "channel": "wecom", "status": "opted_in", "source": "added on WeCom", "changed_at": created_at}
            )

        # -- the customer row ---------------------------------------------------------------------
        attributes: dict[str, Any] = {"city": city}
        if category == "open" and depth >= 3:
            attributes["budget_cny"] = rng.choice((5000, 20000, 50000, 100000))
        if spent:
            attributes["lifetime_value_cny"] = round(spent, 2)
        plan.customers.append(
            {
                "id": cid,
                "display_name": name,
                "company": company,
                "phones": phones,
                "emails": emails,
                "attributes": attributes,
                "owner_id": owner,
                "stage_id": final.id if final else None,
                "source": source,
                "search_text": search_text(cast(Customer, _Names(name, company, phones, emails)), nicknames),
                "merged_into_id": None,
                "merged_at": None,
                "last_interaction_at": last_interaction,
                "created_at": created_at,
                "updated_at": max(times[-1], created_at),
            }
        )
        for kind, values in (("phone", phones), ("email", emails)):
            plan.contact_points.extend({"customer_id": cid, "kind": kind, "value": v} for v in values)

    def identity(
        self,
        cid: uuid.UUID,
        ids: dict[str, uuid.UUID],
        channel: str,
        external_id: str,
        union: str | None,
        nickname: str | None,
        followers: int | None,
        at: dt.datetime,
        profile: dict[str, Any],
    ) -> None:
        iid = ids[channel] = new_id()
        avatar = f"https://api.dicebear.com/9.x/thumbs/svg?seed={external_id[-10:]}" if channel != "email" else None
        self.plan.identities.append(
            {
                "id": iid,
                "customer_id": cid,
                "channel": channel,
                "external_id": external_id,
                "union_id": union,
                "nickname": nickname,
                "avatar_url": avatar,
                "follower_count": followers,
                "profile": profile,
                "created_at": at,
                "updated_at": at,
            }
        )


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


GRADE_FIELD = {"key": "grade", "label": "客户等级 Grade", "kind": "single_choice", "choices": ["A", "B", "C"]}


async def _grade(session: Any, customers: list[dict[str, Any]]) -> int:
    """Grade the demo customers A/B/C (the ``grade`` custom field, defined if missing) by how far
    they got: won or retained → A, past the pipeline's second open stage → B, the rest C."""
    grade = (await session.execute(select(FieldDefinition).where(FieldDefinition.key == GRADE_FIELD["key"]))).scalar_one_or_none()
    if grade is None:
        grade = FieldDefinition(id=new_id(), entity="customer", position=0, created_at=utcnow(), **GRADE_FIELD)
        session.add(grade)
        await session.flush()
    if grade.kind != "single_choice" or not {"A", "B", "C"} <= set(grade.choices):
        return 0  # the tenant has a grade field of its own: leave it alone
    stages = {s.id: s for s in (await session.execute(select(Stage))).scalars()}
    rows = []
    for c in customers:
        stage = stages.get(c["stage_id"]) if c.get("stage_id") else None
        if stage is None:
            continue
        letter = "A" if stage.category in ("won", "retained") else "B" if stage.category == "open" and stage.position >= 2 else "C"
        rows.append(
            {"id": new_id(), "customer_id": c["id"], "field_id": grade.id, "text_value": letter, "number_value": None, "date_value": None}
        )
    if rows:
        await session.execute(insert(CustomerFieldValue), rows, execution_options={"render_nulls": True})
    return len(rows)


async def load_demo(
    runtime: Runtime,
    *,
    slug: str = "demo",
    customers: int = 300,
    seed: int = 7,
    if_empty: bool = False,
    now: dt.datetime | None = None,
) -> DemoSummary:
    """Create (if missing) the tenant ``slug`` and fill it with demo data, in one transaction.

    :param customers: how many customers to generate.
    :param seed: the random seed; the same seed (and ``now``) gives the same data.
    :param if_empty: if the tenant already has customers, change nothing and return a summary
        with ``loaded=False`` (``make run`` calls it on every start).
    :param now: the end of the generated six months of history (default: the current time).
    :raises ConflictError: the tenant already has customers and ``if_empty`` is False.
    """
    started = time.perf_counter()
    if not 0 <= customers <= 100_000:
        raise ValidationError("customers must be between 0 and 100000", field="customers")
    now = (now or utcnow()).astimezone(dt.UTC)
    async with runtime.write_session(None) as session:
        with unscoped(session):
            tenant_id = (await session.execute(select(Tenant.id).where(Tenant.slug == slug))).scalar_one_or_none()
        tenant_created = tenant_id is None
        if tenant_id is None:
            tenant_id = await create_tenant(session, slug, "Demo 示例公司" if slug == "demo" else f"Demo ({slug})")
        session.for_tenant(tenant_id)
        existing = (await session.execute(select(func.count()).select_from(Customer))).scalar_one()
        if existing:
            if if_empty:
                return DemoSummary(
                    tenant_id=tenant_id,
                    slug=slug,
                    loaded=False,
                    message=f"tenant {slug!r} already has {existing} customers; nothing loaded",
                    seconds=round(time.perf_counter() - started, 3),
                )
            raise ConflictError(f"tenant {slug!r} already has {existing} customers; load the demo into an empty tenant (or pass if_empty)")
        tx = Tx(runtime, session, RequestContext(tenant_id=tenant_id, actor=DEMO_ACTOR))

        # staff: reuse users that already exist under the same email
        known = {u.email: u for u in (await session.execute(select(User))).scalars()}
        staff: dict[str, uuid.UUID] = {}
        staff_names: dict[uuid.UUID, str] = {}
        new_users: list[dict[str, Any]] = []
        for local, name, role, team in STAFF:
            email = f"{local}@{STAFF_DOMAIN}"
            user = known.get(email)
            uid = user.id if user is not None else new_id()
            if user is None:
                new_users.append(
                    {
                        "id": uid,
                        "email": email,
                        "name": name,
                        "role": role,
                        "team": team,
                        "active": True,
                        "created_at": now - dt.timedelta(days=HISTORY_DAYS + 30),
                    }
                )
            staff[local], staff_names[uid] = uid, name

        gen = _Gen(seed, now, _Path.of(await stages_of(session, (await default_pipeline(session)).id)), staff, staff_names)
        for _ in range(customers):
            gen.customer()
        plan = gen.plan
        plan.users = new_users
        # reuse tags that already exist in the tenant (same group and name)
        existing_tags = {(t.group_name, t.name): t.id for t in (await session.execute(select(Tag))).scalars()}
        fresh_tags = []
        remap: dict[uuid.UUID, uuid.UUID] = {}
        for row in plan.tags:
            old = existing_tags.get((row["group_name"], row["name"]))
            if old is None:
                fresh_tags.append(row)
            else:
                remap[row["id"]] = old
        for row in plan.customer_tags:
            row["tag_id"] = remap.get(row["tag_id"], row["tag_id"])

        for model, rows in (
            (User, plan.users),
            (Tag, fresh_tags),
            (Customer, plan.customers),
            (ContactPoint, plan.contact_points),
            (Identity, plan.identities),
            (StageChange, plan.stage_changes),
            (Interaction, plan.interactions),
            (CustomerTag, plan.customer_tags),
            (Task, plan.tasks),
            (Consent, plan.consents),
        ):
            if rows and model is Customer:
                # one statement for all of them (COPY on PostgreSQL): the live-customer count's
                # statement trigger fires once (one count row), where an executemany fires it per
                # row (a count row per customer until the fold)
                await insert_rows(session, cast(Any, Customer).__table__, rows)
            elif rows:
                await session.execute(insert(model), rows, execution_options={"render_nulls": True})
        graded = await _grade(session, plan.customers)
        sales: dict[str, int] = {}
        if "sales" in runtime.enabled_plugins:
            # deals, contracts and payments (``payment`` interactions: scoring counts them as money received)
            from guanxi.plugins.sales.deals.demo import add_demo_deals

            sales = await add_demo_deals(tx, seed, now)
        summary = DemoSummary(
            tenant_id=tenant_id,
            slug=slug,
            loaded=True,
            tenant_created=tenant_created,
            message=f"loaded {customers} demo customers into tenant {slug!r}",
            users=len(plan.users),
            customers=len(plan.customers),
            contact_points=len(plan.contact_points),
            identities=len(plan.identities),
            interactions=len(plan.interactions),
            stage_changes=len(plan.stage_changes),
            tags=len(fresh_tags),
            customer_tags=len(plan.customer_tags),
            tasks=len(plan.tasks),
            consents=len(plan.consents),
            graded=graded,
            **sales,
        )
        audit(
            tx,
            "demo.load",
            "tenant",
            tenant_id,
            {k: v for k, v in msgspec.structs.asdict(summary).items() if isinstance(v, int) and not isinstance(v, bool)} | {"seed": seed},
        )
        await session.flush()
        # PostgreSQL: the planner knows nothing of a bulk-loaded tenant until autovacuum's next
        # ANALYZE; without statistics a page of customers can take 200x longer (see the module)
        await refresh_statistics(session)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary
