"""Array layout of the tourist-flow engine: column numbers, state codes and the ``World`` bundle.

All engine state lives in the numpy arrays of one ``World`` (a namedtuple, which Numba passes to
its kernels as one argument). Row-major 2-D tables hold one row per group (``gi`` integers, ``gf``
floats), per attraction, per hotel or per visit; the constants below name their columns. Numba
reads these module globals as compile-time constants.
"""
from __future__ import annotations

from collections import namedtuple

# -- group states (gi[:, G_STATE]) -------------------------------------------------------------
NOT_ARRIVED = 0
SEARCH_TRAVEL = 1    # walking to the next hotel to ask for a room
SEARCH_ENQUIRY = 2   # asking at a hotel's desk (enquiry_s)
SEARCH_PLATFORM = 3  # looking a room up on the platform (platform_search_s)
TRAVEL_ATTR = 4      # on the way to an attraction
WAIT_SLOT = 5        # at an attraction, waiting for the start of the booked entry slot
QUEUE = 6            # in an attraction's entry queue (regular or reservation lane)
GATE = 7             # being served at an entry gate
INSIDE = 8           # inside an attraction (dwell)
IDLE = 9             # waiting for an attraction on the plan to open
TRAVEL_HOTEL = 10    # on the way to the booked hotel in the evening
DESK_QUEUE = 11      # in the hotel front-desk queue
DESK = 12            # being checked in (desk, or online check-in key pick-up)
CHECKED_IN = 13      # done: in the hotel for the night
TRAVEL_EXIT = 14     # on the way back to the entry point to leave
LEFT = 15            # done: left the city
N_STATES = 16

STATE_NAMES = (
    "not_arrived", "search_travel", "search_enquiry", "search_platform", "travel_attraction",
    "wait_slot", "queue", "gate", "inside", "idle", "travel_hotel", "desk_queue", "desk",
    "checked_in", "travel_exit", "left",
)
TRAVELLING_STATES = (SEARCH_TRAVEL, TRAVEL_ATTR, TRAVEL_HOTEL, TRAVEL_EXIT)
# Coarse categories for the view's colours
CATEGORY = {
    "searching_room": (SEARCH_TRAVEL, SEARCH_ENQUIRY, SEARCH_PLATFORM),
    "travelling": (TRAVEL_ATTR, TRAVEL_HOTEL, TRAVEL_EXIT),
    "queueing": (WAIT_SLOT, QUEUE, GATE, DESK_QUEUE, DESK),
    "visiting": (INSIDE,),
    "idle": (IDLE,),
    "done": (CHECKED_IN, LEFT),
}

# -- group flags (gi[:, G_FLAGS], bits) --------------------------------------------------------
F_OVERNIGHT = 1   # needs a room
F_PLATFORM = 2    # searches the room on the platform
F_ONLINE = 4      # checked in online (key pick-up only)
F_FOLLOW = 8      # follows the real-time recommendation
F_RESERVE = 16    # books timed-entry slots
F_SHUTTLE = 32    # takes the shuttle where it is faster

# -- group integer columns ---------------------------------------------------------------------
G_STATE, G_SIZE, G_ENTRY, G_FLAGS, G_ROOMS, G_PLACE, G_FROM, G_TO, G_MODE, G_ATTR, G_PLAN_K, \
    G_HOTEL, G_SEARCH_K, G_NEXT, G_VISIT, G_SLOT, G_VISITS = range(17)
N_GI = 17
# -- group float columns -----------------------------------------------------------------------
F_ARRIVE, F_BUDGET_END, F_DEP, F_ARR, F_SEARCH_END, F_CHECKIN_START, F_CHECKIN_END, F_MARK, \
    F_LEFT, F_DESK_START = range(10)  # F_MARK: joined the desk queue
N_GF = 10

# -- plan status (plan_st) ---------------------------------------------------------------------
P_PENDING, P_VISITED, P_DROPPED, P_TURNED = 0, 1, 2, 3

# -- visit records (one row per arrival of a group at an attraction) ---------------------------
V_GROUP, V_ATTR, V_OUTCOME, V_RESERVED = range(4)
N_VI = 4
V_ARRIVE, V_JOIN, V_START, V_ENTER, V_LEAVE = range(5)  # V_JOIN: joined the entry queue
N_VF = 5
OUT_ACTIVE, OUT_DONE, OUT_TURNED = 0, 1, 2

# -- attractions: static -----------------------------------------------------------------------
A_SVC_MEAN, A_SVC_CV, A_DWELL_MEAN, A_DWELL_CV, A_OPEN, A_CLOSE, A_SLOT0 = range(7)
N_AF = 7
A_GATES, A_CAP, A_CAP_NOMINAL, A_SVC_DIST, A_DWELL_DIST, A_PLACE, A_QUOTA = range(7)
N_AI = 7
# -- attractions: dynamic counts (persons unless said) -----------------------------------------
D_BUSY, D_RESERVED, D_INSIDE, D_QP, D_PQP, D_PEAK_IN, D_PEAK_Q, D_JOINED, D_ENTERED, D_LEFT, \
    D_TURNED, D_SLOT_WAIT, D_ENROUTE = range(13)  # D_BUSY: gates busy (groups); D_RESERVED: inside + at gates
N_AD = 13
AF_AREA_Q, AF_AREA_IN, AF_T_LAST = range(3)  # time integrals (person-seconds) up to AF_T_LAST
N_ADF = 3

# -- hotels ------------------------------------------------------------------------------------
H_DESK_MEAN, H_DESK_CV, H_ENQUIRY, H_LET_UNTIL = range(4)  # H_LET_UNTIL: lets no room from then (flooded)
N_HF = 4
H_DESKS, H_DESK_DIST, H_PLACE, H_ROOMS = range(4)
N_HI = 4
HD_FREE, HD_BUSY, HD_QP, HD_PEAK_Q, HD_JOINED = range(5)
N_HD = 5
HF_AREA_Q, HF_T_LAST = range(2)
N_HDF = 2

# -- distributions -----------------------------------------------------------------------------
DIST_EXPONENTIAL, DIST_DETERMINISTIC, DIST_LOGNORMAL = 0, 1, 2
DISTRIBUTIONS = {"exponential": 0, "deterministic": 1, "lognormal": 2}

# -- scalar parameters (par) and counters (ctr) ------------------------------------------------
PAR_T0, PAR_HEADWAY, PAR_SLOT_LEN, PAR_PLATFORM_S, PAR_ONLINE_S, PAR_OBJECTIVE, PAR_MAX_ENQ, \
    PAR_MAX_VISITS = range(8)
N_PAR = 8
OBJ_WAIT, OBJ_CROWDING = 0, 1
C_HEAP_N, C_SEQ, C_NEXT_ARR, C_NVISITS, C_TODO, C_N_DRAWN = range(6)  # C_N_DRAWN: groups drawn at construction
N_CTR = 6

# random-number streams (kernels.uniform)
S_GATE, S_DWELL, S_DESK = 1, 2, 3

# The arrays of one engine. Static ones come from the inputs; the rest is the state that
# get_state()/set_state() save and restore (see engine.STATIC_FIELDS).
World = namedtuple("World", [
    # static inputs
    "T",            # (modes, places, places) travel times, s; mode 1 (shuttle) may be inf
    "af", "ai",     # attractions
    "hf", "hi",     # hotels
    "hotel_order",  # (entries, hotels): hotels by travel time from each entry, nearest first
    "entry_place",  # (entries,)
    "par",          # scalar parameters
    # drawn at construction from the caller's Generator (part of the state)
    "key",          # (1,) uint64: key of the counter-based generator used inside the kernels
    "plan",         # (groups, K) attraction indices in planned order, -1 padded
    # Groups 0 .. ctr[C_N_DRAWN]-1 were drawn at construction and arrive in index order (sorted by
    # time, ctr[C_NEXT_ARR] the next); groups after them were handed over by another model of a
    # coupled run (``TourismEngine.add_arrivals``) and arrived when they were appended.
    # dynamic
    "gi", "gf", "plan_st",
    "vi", "vf",
    "ad", "adf", "hd", "hdf",
    "qh", "qt",     # FIFO lists: heads and tails; list a = regular queue, A+a = reservation lane, 2A+h = desk
    "slots",        # (attractions, n_slots) persons booked per entry slot
    "ht", "hs", "hid",  # event heap: time, sequence number (tie-break), id (group, or -1-(2a+closing))
    "todo",         # groups that must choose what to do next, in the order they were put there
    "ctr", "now",
])
