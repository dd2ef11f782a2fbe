"""The simulator's sport profiles: teams, books, lines and player props per sport.

Pure data plus `profile_for`. Teams are written "City|Short": the full name is the
contract's home/away team, the short name goes into event ids (`2026-05-12_Lakers_Warriors`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Book:
    key: str
    coverage: str  # per_market | game_line
    vig: float  # overround: 0.045 prices a fair 50/50 pair at about -110/-110
    cents_step: int  # prices are rounded to this many cents (US books quote in 5s)


BOOKS: tuple[Book, ...] = (
    Book("pinnacle", "per_market", 0.025, 1),
    Book("bet365", "per_market", 0.045, 5),
    Book("betmgm", "per_market", 0.05, 5),
    Book("caesars", "per_market", 0.05, 5),
    Book("fanatics", "per_market", 0.048, 5),
    Book("bovada", "per_market", 0.055, 5),
    Book("fanduel", "game_line", 0.045, 2),
    Book("draftkings", "game_line", 0.048, 5),
)
PROP_VIG_FACTOR = 1.6  # props carry more margin than game lines


@dataclass(frozen=True, slots=True)
class SportProfile:
    key: str
    teams: tuple[str, ...]
    engine: str  # which play engine in sim_games drives live games
    draw: bool = False  # soccer: three-way moneyline
    spread_scale: float = 20.0  # home point ~ -(p_home - 0.5) * scale
    spread_fixed: float | None = None  # run line / puck line: always +-1.5, only prices move
    total: tuple[float, float] = (40.0, 50.0)
    # each player role lists the prop markets a player of that role carries
    roles: tuple[tuple[str, ...], ...] = (("player_points",),)
    prop_lines: tuple[tuple[str, float, float], ...] = (("player_points", 5.0, 15.0),)
    score_weight: float = 0.1  # moneyline log-odds shift per point scored live
    wall_s: int = 3600  # rough length of a live game, for spreading initial start times


def _teams(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


NBA = _teams("""
    Atlanta|Hawks, Boston|Celtics, Brooklyn|Nets, Charlotte|Hornets, Chicago|Bulls, Cleveland|Cavaliers,
    Dallas|Mavericks, Denver|Nuggets, Detroit|Pistons, Golden State|Warriors, Houston|Rockets,
    Indiana|Pacers, Los Angeles|Clippers, Los Angeles|Lakers, Memphis|Grizzlies, Miami|Heat,
    Milwaukee|Bucks, Minnesota|Timberwolves, New Orleans|Pelicans, New York|Knicks,
    Oklahoma City|Thunder, Orlando|Magic, Philadelphia|76ers, Phoenix|Suns, Portland|Trail Blazers,
    Sacramento|Kings, San Antonio|Spurs, Toronto|Raptors, Utah|Jazz, Washington|Wizards""")
MLB = _teams("""
    Arizona|Diamondbacks, Atlanta|Braves, Baltimore|Orioles, Boston|Red Sox, Chicago|Cubs,
    Chicago|White Sox, Cincinnati|Reds, Cleveland|Guardians, Colorado|Rockies, Detroit|Tigers,
    Houston|Astros, Kansas City|Royals, Los Angeles|Angels, Los Angeles|Dodgers, Miami|Marlins,
    Milwaukee|Brewers, Minnesota|Twins, New York|Mets, New York|Yankees, Oakland|Athletics,
    Philadelphia|Phillies, Pittsburgh|Pirates, San Diego|Padres, San Francisco|Giants, Seattle|Mariners,
    St. Louis|Cardinals, Tampa Bay|Rays, Texas|Rangers, Toronto|Blue Jays, Washington|Nationals""")
EPL = _teams("""
    |Arsenal, |Aston Villa, |Bournemouth, |Brentford, |Brighton and Hove Albion, |Chelsea,
    |Crystal Palace, |Everton, |Fulham, |Ipswich Town, |Leicester City, |Liverpool, |Manchester City,
    |Manchester United, |Newcastle United, |Nottingham Forest, |Southampton, |Tottenham Hotspur,
    |West Ham United, |Wolverhampton Wanderers""")
NFL = _teams("""
    Arizona|Cardinals, Atlanta|Falcons, Baltimore|Ravens, Buffalo|Bills, Carolina|Panthers,
    Chicago|Bears, Cincinnati|Bengals, Cleveland|Browns, Dallas|Cowboys, Denver|Broncos,
    Detroit|Lions, Green Bay|Packers, Houston|Texans, Indianapolis|Colts, Jacksonville|Jaguars,
    Kansas City|Chiefs, Las Vegas|Raiders, Los Angeles|Chargers, Los Angeles|Rams, Miami|Dolphins,
    Minnesota|Vikings, New England|Patriots, New Orleans|Saints, New York|Giants, New York|Jets,
    Philadelphia|Eagles, Pittsburgh|Steelers, San Francisco|49ers, Seattle|Seahawks,
    Tampa Bay|Buccaneers, Tennessee|Titans, Washington|Commanders""")
NHL = _teams("""
    Anaheim|Ducks, Boston|Bruins, Buffalo|Sabres, Calgary|Flames, Carolina|Hurricanes,
    Chicago|Blackhawks, Colorado|Avalanche, Columbus|Blue Jackets, Dallas|Stars, Detroit|Red Wings,
    Edmonton|Oilers, Florida|Panthers, Los Angeles|Kings, Minnesota|Wild, Montreal|Canadiens,
    Nashville|Predators, New Jersey|Devils, New York|Islanders, New York|Rangers, Ottawa|Senators,
    Philadelphia|Flyers, Pittsburgh|Penguins, San Jose|Sharks, Seattle|Kraken, St. Louis|Blues,
    Tampa Bay|Lightning, Toronto|Maple Leafs, |Utah Hockey Club, Vancouver|Canucks,
    Vegas|Golden Knights, Washington|Capitals, Winnipeg|Jets""")
GENERIC = _teams("""
    Northside|Falcons, Riverside|Rovers, Lakeshore|Comets, Hill Valley|Hawks, Port Royal|Pirates,
    Eastbrook|Eagles, Westfield|Wolves, Granite City|Giants, Redwood|Rangers, Silver Bay|Sharks,
    Stonebridge|Stallions, Maple Grove|Mustangs""")

PROFILES: dict[str, SportProfile] = {
    "basketball_nba": SportProfile(
        "basketball_nba", NBA, "basketball", spread_scale=30.0, total=(210.0, 236.0),
        roles=(("player_points", "player_rebounds", "player_assists"),) * 2,
        prop_lines=(("player_points", 14.0, 30.0), ("player_rebounds", 3.0, 12.0), ("player_assists", 2.0, 10.0)),
        score_weight=0.03, wall_s=3600),
    "baseball_mlb": SportProfile(
        "baseball_mlb", MLB, "baseball", spread_fixed=1.5, total=(7.0, 10.0),
        roles=(("pitcher_strikeouts",), ("batter_hits", "batter_total_bases")),
        prop_lines=(("pitcher_strikeouts", 4.0, 8.0), ("batter_hits", 0.0, 1.0), ("batter_total_bases", 1.0, 2.0)),
        score_weight=0.3, wall_s=2700),
    "soccer_epl": SportProfile(
        "soccer_epl", EPL, "soccer", draw=True, spread_scale=4.0, total=(2.0, 3.0),
        roles=(("player_shots", "player_shots_on_goal"),) * 2,
        prop_lines=(("player_shots", 1.0, 3.0), ("player_shots_on_goal", 0.0, 1.0)),
        score_weight=0.8, wall_s=6000),
    "americanfootball_nfl": SportProfile(
        "americanfootball_nfl", NFL, "football", spread_scale=24.0, total=(38.0, 52.0),
        roles=(("player_pass_yds", "player_pass_tds"), ("player_rush_yds", "player_reception_yds")),
        prop_lines=(("player_pass_yds", 200.0, 280.0), ("player_pass_tds", 1.0, 2.0),
                    ("player_rush_yds", 40.0, 80.0), ("player_reception_yds", 40.0, 80.0)),
        score_weight=0.05, wall_s=4500),
    "icehockey_nhl": SportProfile(
        "icehockey_nhl", NHL, "hockey", spread_fixed=1.5, total=(5.0, 6.0),
        roles=(("player_shots_on_goal", "player_points"),) * 2,
        prop_lines=(("player_shots_on_goal", 2.0, 4.0), ("player_points", 0.0, 1.0)),
        score_weight=0.6, wall_s=4200),
}

FIRST_NAMES = ("James", "Marcus", "Tyler", "Jalen", "Luis", "Mateo", "Noah", "Liam", "Andre", "Kevin",
               "Darius", "Owen", "Rafael", "Jordan", "Evan", "Caleb", "Isaac", "Dominic", "Trevor", "Malik")
LAST_NAMES = ("Walker", "Brooks", "Hayes", "Reyes", "Coleman", "Foster", "Bennett", "Ortiz", "Price",
              "Sullivan", "Grant", "Morales", "Jenkins", "Fischer", "Hughes", "Porter", "Santos", "Wallace",
              "Keller", "Bishop")


def profile_for(sport_key: str) -> SportProfile:
    """The sport's profile; an unknown key gets generic teams and a generic game."""
    if sport_key in PROFILES:
        return PROFILES[sport_key]
    return SportProfile(sport_key, GENERIC, "generic", spread_scale=10.0, total=(4.0, 8.0),
                        prop_lines=(("player_points", 1.0, 3.0),), score_weight=0.2, wall_s=3000)


def full_name(team: str) -> str:
    """'Los Angeles|Lakers' -> 'Los Angeles Lakers'; '|Arsenal' -> 'Arsenal'."""
    return team.replace("|", " ").strip()


def short_name(team: str) -> str:
    """'Los Angeles|Lakers' -> 'Lakers'; 'Portland|Trail Blazers' -> 'Trail_Blazers'."""
    return team.split("|", 1)[1].replace(" ", "_")
