"""The shipped catalog: The Odds API v4 sport keys, bookmaker titles and common prop markets.

Pure data plus tiny lookups. The store seeds `SPORTS` as inactive sports (they turn active
when data arrives); a sport, book or market outside the catalog and never seen in ingest is
unknown (CONTRACT.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SportInfo:
    """One row of The Odds API's `/v4/sports` list (without `active`, which is live state)."""

    key: str
    group: str
    title: str
    description: str
    has_outrights: bool = False


def _s(key: str, group: str, title: str, description: str, outrights: bool = False) -> SportInfo:
    return SportInfo(key, group, title, description, outrights)


_AF, _AR, _BB, _BK = "American Football", "Aussie Rules", "Baseball", "Basketball"
_CR, _GO, _IH, _SO, _TE = "Cricket", "Golf", "Ice Hockey", "Soccer", "Tennis"

SPORTS: tuple[SportInfo, ...] = (
    # American football
    _s("americanfootball_cfl", _AF, "CFL", "Canadian Football League"),
    _s("americanfootball_ncaaf", _AF, "NCAAF", "US College Football"),
    _s("americanfootball_ncaaf_championship_winner", _AF, "NCAAF Championship Winner",
       "US College Football Championship Winner", True),
    _s("americanfootball_nfl", _AF, "NFL", "US Football"),
    _s("americanfootball_nfl_preseason", _AF, "NFL Preseason", "US Football"),
    _s("americanfootball_nfl_super_bowl_winner", _AF, "NFL Super Bowl Winner", "Super Bowl Winner", True),
    _s("americanfootball_ufl", _AF, "UFL", "United Football League"),
    # Aussie rules
    _s("aussierules_afl", _AR, "AFL", "Aussie Football"),
    # Baseball
    _s("baseball_kbo", _BB, "KBO", "KBO League"),
    _s("baseball_milb", _BB, "MiLB", "Minor League Baseball"),
    _s("baseball_mlb", _BB, "MLB", "Major League Baseball"),
    _s("baseball_mlb_preseason", _BB, "MLB Preseason", "Major League Baseball"),
    _s("baseball_mlb_world_series_winner", _BB, "MLB World Series Winner", "World Series Winner", True),
    _s("baseball_ncaa", _BB, "NCAA Baseball", "US College Baseball"),
    _s("baseball_npb", _BB, "NPB", "Nippon Professional Baseball"),
    # Basketball
    _s("basketball_euroleague", _BK, "Basketball Euroleague", "Basketball Euroleague"),
    _s("basketball_nba", _BK, "NBA", "US Basketball"),
    _s("basketball_nba_championship_winner", _BK, "NBA Championship Winner", "Championship Winner", True),
    _s("basketball_nba_preseason", _BK, "NBA Preseason", "US Basketball"),
    _s("basketball_nbl", _BK, "NBL", "AU National Basketball League"),
    _s("basketball_ncaab", _BK, "NCAAB", "US College Basketball"),
    _s("basketball_ncaab_championship_winner", _BK, "NCAAB Championship Winner",
       "US College Basketball Championship Winner", True),
    _s("basketball_wnba", _BK, "WNBA", "US Basketball"),
    _s("basketball_wncaab", _BK, "WNCAAB", "US Women's College Basketball"),
    # Combat sports
    _s("boxing_boxing", "Boxing", "Boxing", "Boxing Bouts"),
    _s("mma_mixed_martial_arts", "Mixed Martial Arts", "MMA", "Mixed Martial Arts"),
    # Cricket
    _s("cricket_big_bash", _CR, "Big Bash", "Big Bash League"),
    _s("cricket_caribbean_premier_league", _CR, "CPLT20", "Caribbean Premier League"),
    _s("cricket_icc_world_cup", _CR, "ICC World Cup", "ICC World Cup"),
    _s("cricket_international_t20", _CR, "International Twenty20", "International Twenty20"),
    _s("cricket_ipl", _CR, "IPL", "Indian Premier League"),
    _s("cricket_odi", _CR, "One Day Internationals", "One Day Internationals"),
    _s("cricket_psl", _CR, "Pakistan Super League", "Pakistan Super League"),
    _s("cricket_t20_blast", _CR, "T20 Blast", "T20 Blast"),
    _s("cricket_test_match", _CR, "Test Matches", "International Test Matches"),
    _s("cricket_the_hundred", _CR, "The Hundred", "The Hundred"),
    # Golf (outrights only)
    _s("golf_masters_tournament_winner", _GO, "Masters Tournament Winner", "Masters Tournament Winner", True),
    _s("golf_pga_championship_winner", _GO, "PGA Championship Winner", "PGA Championship Winner", True),
    _s("golf_the_open_championship_winner", _GO, "The Open Winner", "The Open Championship Winner", True),
    _s("golf_us_open_winner", _GO, "US Open Winner", "US Open Winner", True),
    # Ice hockey
    _s("icehockey_ahl", _IH, "AHL", "American Hockey League"),
    _s("icehockey_liiga", _IH, "Liiga - Finland", "Finnish SM League"),
    _s("icehockey_nhl", _IH, "NHL", "US Ice Hockey"),
    _s("icehockey_nhl_championship_winner", _IH, "NHL Championship Winner", "Stanley Cup Winner", True),
    _s("icehockey_sweden_allsvenskan", _IH, "HockeyAllsvenskan", "Swedish Hockey Allsvenskan"),
    _s("icehockey_sweden_hockey_league", _IH, "SHL", "Swedish Hockey League"),
    # Lacrosse
    _s("lacrosse_ncaa", "Lacrosse", "NCAA Lacrosse", "US College Lacrosse"),
    _s("lacrosse_pll", "Lacrosse", "PLL", "Premier Lacrosse League"),
    # Politics
    _s("politics_us_presidential_election_winner", "Politics", "US Presidential Elections Winner",
       "US Presidential Election Winner", True),
    # Rugby
    _s("rugbyleague_nrl", "Rugby League", "NRL", "Aussie Rugby League"),
    _s("rugbyleague_nrl_state_of_origin", "Rugby League", "NRL State of Origin", "Australian Rugby League"),
    _s("rugbyunion_six_nations", "Rugby Union", "Six Nations", "Six Nations Championship"),
    # Soccer
    _s("soccer_argentina_primera_division", _SO, "Primera División - Argentina", "Argentine Primera División"),
    _s("soccer_australia_aleague", _SO, "A-League", "Aussie Soccer"),
    _s("soccer_austria_bundesliga", _SO, "Austrian Football Bundesliga", "Austrian Soccer"),
    _s("soccer_belgium_first_div", _SO, "Belgium First Div", "Belgian First Division A"),
    _s("soccer_brazil_campeonato", _SO, "Brazil Série A", "Brasileirão Série A"),
    _s("soccer_chile_campeonato", _SO, "Primera División - Chile", "Campeonato Chileno"),
    _s("soccer_china_superleague", _SO, "Super League - China", "Chinese Soccer"),
    _s("soccer_conmebol_copa_libertadores", _SO, "Copa Libertadores", "CONMEBOL Copa Libertadores"),
    _s("soccer_conmebol_copa_sudamericana", _SO, "Copa Sudamericana", "CONMEBOL Copa Sudamericana"),
    _s("soccer_denmark_superliga", _SO, "Denmark Superliga", "Danish Soccer"),
    _s("soccer_efl_champ", _SO, "Championship", "EFL Championship"),
    _s("soccer_england_efl_cup", _SO, "EFL Cup", "League Cup"),
    _s("soccer_england_league1", _SO, "League 1", "EFL League 1"),
    _s("soccer_england_league2", _SO, "League 2", "EFL League 2"),
    _s("soccer_epl", _SO, "EPL", "English Premier League"),
    _s("soccer_fa_cup", _SO, "FA Cup", "Football Association Challenge Cup"),
    _s("soccer_fifa_world_cup", _SO, "FIFA World Cup", "FIFA World Cup"),
    _s("soccer_fifa_world_cup_winner", _SO, "FIFA World Cup Winner", "FIFA World Cup Winner", True),
    _s("soccer_finland_veikkausliiga", _SO, "Veikkausliiga - Finland", "Finnish Soccer"),
    _s("soccer_france_ligue_one", _SO, "Ligue 1 - France", "French Soccer"),
    _s("soccer_france_ligue_two", _SO, "Ligue 2 - France", "French Soccer"),
    _s("soccer_germany_bundesliga", _SO, "Bundesliga - Germany", "German Soccer"),
    _s("soccer_germany_bundesliga2", _SO, "Bundesliga 2 - Germany", "German Soccer"),
    _s("soccer_germany_liga3", _SO, "3. Liga - Germany", "German Soccer"),
    _s("soccer_greece_super_league", _SO, "Super League - Greece", "Greek Soccer"),
    _s("soccer_italy_serie_a", _SO, "Serie A - Italy", "Italian Soccer"),
    _s("soccer_italy_serie_b", _SO, "Serie B - Italy", "Italian Soccer"),
    _s("soccer_japan_j_league", _SO, "J League", "Japan Soccer League"),
    _s("soccer_korea_kleague1", _SO, "K League 1", "Korean Soccer"),
    _s("soccer_league_of_ireland", _SO, "League of Ireland", "Airtricity League Premier Division"),
    _s("soccer_mexico_ligamx", _SO, "Liga MX", "Mexican Soccer"),
    _s("soccer_netherlands_eredivisie", _SO, "Dutch Eredivisie", "Dutch Soccer"),
    _s("soccer_norway_eliteserien", _SO, "Eliteserien - Norway", "Norwegian Soccer"),
    _s("soccer_poland_ekstraklasa", _SO, "Ekstraklasa - Poland", "Polish Soccer"),
    _s("soccer_portugal_primeira_liga", _SO, "Primeira Liga - Portugal", "Portuguese Soccer"),
    _s("soccer_spain_la_liga", _SO, "La Liga - Spain", "Spanish Soccer"),
    _s("soccer_spain_segunda_division", _SO, "La Liga 2 - Spain", "Spanish Soccer"),
    _s("soccer_spl", _SO, "Premiership - Scotland", "Scottish Premiership"),
    _s("soccer_sweden_allsvenskan", _SO, "Allsvenskan - Sweden", "Swedish Soccer"),
    _s("soccer_sweden_superettan", _SO, "Superettan - Sweden", "Swedish Soccer"),
    _s("soccer_switzerland_superleague", _SO, "Swiss Superleague", "Swiss Soccer"),
    _s("soccer_turkey_super_league", _SO, "Turkey Super League", "Turkish Soccer"),
    _s("soccer_uefa_champs_league", _SO, "UEFA Champions League", "European Champions League"),
    _s("soccer_uefa_europa_conference_league", _SO, "UEFA Europa Conference League",
       "UEFA Europa Conference League"),
    _s("soccer_uefa_europa_league", _SO, "UEFA Europa League", "European Europa League"),
    _s("soccer_uefa_european_championship", _SO, "UEFA Euro", "UEFA European Championship"),
    _s("soccer_uefa_nations_league", _SO, "UEFA Nations League", "UEFA Nations League"),
    _s("soccer_usa_mls", _SO, "MLS", "Major League Soccer"),
    # Tennis
    _s("tennis_atp_aus_open_singles", _TE, "ATP Australian Open", "Men's Singles"),
    _s("tennis_atp_french_open", _TE, "ATP French Open", "Men's Singles"),
    _s("tennis_atp_indian_wells", _TE, "ATP Indian Wells", "Men's Singles"),
    _s("tennis_atp_miami_open", _TE, "ATP Miami Open", "Men's Singles"),
    _s("tennis_atp_us_open", _TE, "ATP US Open", "Men's Singles"),
    _s("tennis_atp_wimbledon", _TE, "ATP Wimbledon", "Men's Singles"),
    _s("tennis_wta_aus_open_singles", _TE, "WTA Australian Open", "Women's Singles"),
    _s("tennis_wta_french_open", _TE, "WTA French Open", "Women's Singles"),
    _s("tennis_wta_us_open", _TE, "WTA US Open", "Women's Singles"),
    _s("tennis_wta_wimbledon", _TE, "WTA Wimbledon", "Women's Singles"),
)

SPORTS_BY_KEY: dict[str, SportInfo] = {s.key: s for s in SPORTS}
SPORT_KEYS: frozenset[str] = frozenset(SPORTS_BY_KEY)


def sport_info(key: str) -> SportInfo | None:
    return SPORTS_BY_KEY.get(key)


def sport_title(key: str) -> str:
    """The Odds API `sport_title` for a key; an unknown key falls back to a readable form."""
    info = SPORTS_BY_KEY.get(key)
    return info.title if info is not None else _readable(key)


# the contract's books (section 5, coverage): per_market first, then game_line
BOOK_TITLES: dict[str, str] = {
    "pinnacle": "Pinnacle",
    "bet365": "Bet365",
    "betmgm": "BetMGM",
    "betrivers": "BetRivers",
    "bovada": "Bovada",
    "underdog": "Underdog",
    "kalshi": "Kalshi",
    "novig": "Novig",
    "fanatics": "Fanatics",
    "caesars": "Caesars",
    "betr": "Betr",
    "fliff": "Fliff",
    "fanduel": "FanDuel",
    "draftkings": "DraftKings",
    "bwin": "Bwin",
    "unibet": "Unibet",
    "pmu": "PMU",
    "betclic": "Betclic",
}


def book_title(key: str) -> str:
    """`fanduel` -> `FanDuel`; a book not in the table -> its key title-cased (`my_book` -> `My Book`)."""
    return BOOK_TITLES.get(key) or _readable(key)


def _readable(key: str) -> str:
    return key.replace("_", " ").strip().title() or key


GAME_MARKET_KEYS: tuple[str, ...] = ("h2h", "spreads", "totals")

PROP_MARKETS: tuple[str, ...] = (
    # basketball
    "player_points",
    "player_rebounds",
    "player_assists",
    "player_threes",
    "player_blocks",
    "player_steals",
    "player_turnovers",
    "player_points_rebounds_assists",
    "player_points_rebounds",
    "player_points_assists",
    "player_rebounds_assists",
    "player_double_double",
    # american football
    "player_pass_yds",
    "player_pass_tds",
    "player_pass_completions",
    "player_pass_attempts",
    "player_pass_interceptions",
    "player_rush_yds",
    "player_rush_attempts",
    "player_rush_tds",
    "player_receptions",
    "player_reception_yds",
    "player_anytime_td",
    # baseball
    "batter_hits",
    "batter_total_bases",
    "batter_home_runs",
    "batter_rbis",
    "batter_runs_scored",
    "batter_strikeouts",
    "pitcher_strikeouts",
    "pitcher_hits_allowed",
    "pitcher_outs",
    # ice hockey
    "player_shots_on_goal",
    "player_goals",
    "player_power_play_points",
    "player_total_saves",
    # soccer
    "player_goal_scorer_anytime",
    "player_shots",
    "player_shots_on_target",
)

MARKETS: tuple[str, ...] = GAME_MARKET_KEYS + PROP_MARKETS
