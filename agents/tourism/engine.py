"""The tourist-flow engine: a discrete-event simulation of tourist groups over a network of places.

``TourismEngine(travel_s, entries, attractions, hotels, demand, interventions, start_s=, end_s=,
rng=)`` checks the inputs, draws every arrival (time, entry point, group size, time budget,
behaviour flags, itinerary) from the caller's ``numpy.random.Generator`` and builds the ``World``
arrays. ``advance(t)`` runs the Numba event loop (``kernels.run_until``) up to and including t.
Which of several events at the same instant goes first is fixed (city arrivals, then the order
they were scheduled), and nothing else depends on where ``advance`` stopped, so pausing anywhere
gives the same numbers bit for bit. ``get_state``/``set_state`` save and restore everything that
is not rebuilt from the static inputs.

See docs/tourist_flow.md for the model.
"""
from __future__ import annotations

import math

import numpy as np

from twin.core.errors import UserError

from . import kpis as K
from .demand import arrival_times, draw_plans, trim_plans
from .inputs import (
    Attractions, Demand, Entries, Hotels, Interventions, check_number, check_places, check_share,
    check_travel_times, choice_per_feature, feature_ids, per_feature, rate_profile,
)
from .kernels import arrive_now, run_until, schedule_openings
from .layout import (
    AF_T_LAST, A_CAP, A_CAP_NOMINAL, A_CLOSE, A_DWELL_CV, A_DWELL_DIST, A_DWELL_MEAN, A_GATES,
    A_OPEN, A_PLACE, A_QUOTA, A_SLOT0, A_SVC_CV, A_SVC_DIST, A_SVC_MEAN, CATEGORY, C_NEXT_ARR, C_N_DRAWN,
    DISTRIBUTIONS, F_ARR, F_ARRIVE, F_BUDGET_END, F_DEP, F_FOLLOW, F_ONLINE, F_OVERNIGHT,
    F_PLATFORM, F_RESERVE, F_SHUTTLE, GATE, G_ATTR, G_ENTRY, G_FLAGS, G_FROM, G_HOTEL, G_MODE,
    G_PLACE, G_PLAN_K, G_ROOMS, G_SEARCH_K, G_SIZE, G_SLOT, G_STATE, G_TO, G_VISITS, HD_FREE,
    HF_T_LAST, H_DESKS, H_DESK_CV, H_DESK_DIST, H_DESK_MEAN, H_ENQUIRY, H_LET_UNTIL, H_PLACE, H_ROOMS, INSIDE,
    N_AD, N_ADF, N_AF, N_AI, N_CTR, N_GF, N_GI, N_HD, N_HDF, N_HF, N_HI, N_PAR, N_VF, N_VI,
    OBJ_CROWDING, OBJ_WAIT, PAR_HEADWAY, PAR_MAX_ENQ, PAR_MAX_VISITS, PAR_OBJECTIVE, PAR_ONLINE_S,
    PAR_PLATFORM_S, PAR_SLOT_LEN, PAR_T0, QUEUE, STATE_NAMES, TRAVELLING_STATES, WAIT_SLOT, World,
)

# World fields rebuilt from the static inputs; everything else is state.
STATIC_FIELDS = ("T", "af", "ai", "hf", "hi", "hotel_order", "entry_place", "par")
STATE_FIELDS = tuple(f for f in World._fields if f not in STATIC_FIELDS)
STATE_VERSION = 1
MAX_GROUP = 255   # the kernels' random counters hold 8 bits for the member
MAX_VISITS = 255  # ... and 8 bits for the plan slot


class TourismEngine:
    def __init__(self, travel_s, entries: Entries, attractions: Attractions, hotels: Hotels | None = None,
                 demand: Demand | None = None, interventions: Interventions | None = None, *,
                 start_s: float = 0.0, end_s: float = 86400.0, rng: np.random.Generator):
        demand = demand or Demand()
        iv = interventions or Interventions()
        self._kpi_buffers: dict = {}  # scratch arrays of kpis(), reused at every call
        self.start_s = check_number(start_s, "start_s")
        self.end_s = check_number(end_s, "end_s")
        if self.end_s <= self.start_s:
            raise UserError(f"end_s = {end_s} must be after start_s = {start_s}.")
        T = check_travel_times(travel_s)
        n_places = T.shape[1]
        pmf = self._check_demand(demand)
        self._check_interventions(iv)

        # -- entries
        n_e = len(entries.place)
        if n_e == 0:
            raise UserError("entries: there is no entry point (station or coach stop); add at least one.")
        self.entry_ids = feature_ids(entries.ids, n_e, "entry")
        entry_place = check_places(entries.place, n_places, "entry", self.entry_ids)
        rates = entries.arrival_rate_per_h
        if isinstance(rates, (int, float, np.number)):
            rates = [rates] * n_e
        if len(rates) != n_e:
            raise UserError(f"entries: arrival_rate_per_h has {len(rates)} items for {n_e} entry points; "
                            "give one number or profile per entry point.")
        procs = entries.arrival_process
        procs = [procs] * n_e if isinstance(procs, str) else list(procs)
        if len(procs) != n_e:
            raise UserError(f"entries: arrival_process has {len(procs)} items for {n_e} entry points.")
        profiles = [rate_profile(r, p, self.start_s, self.end_s, i) for r, p, i in zip(rates, procs, self.entry_ids)]

        # -- attractions, hotels
        af, ai, popularity, self.attr_ids = self._attractions(attractions, iv, n_places)
        if pmf.size > ai[:, A_CAP].min():
            a = int(np.argmin(ai[:, A_CAP]))
            raise UserError(f'attraction "{self.attr_ids[a]}": capacity {ai[a, A_CAP]} (after capacity_cap) is '
                            f"smaller than the largest group ({pmf.size} persons); raise it or cap group sizes.")
        hf, hi, rooms_free, self.hotel_ids = self._hotels(hotels, n_places)
        order = np.argsort(T[0][entry_place][:, hi[:, H_PLACE]], axis=1, kind="stable") if len(hi) else \
            np.zeros((n_e, 0), np.int64)

        par = np.zeros(N_PAR)
        par[PAR_T0] = self.start_s
        par[PAR_HEADWAY] = iv.shuttle_headway_s
        par[PAR_SLOT_LEN] = iv.slot_length_s
        par[PAR_PLATFORM_S] = iv.platform_search_s
        par[PAR_ONLINE_S] = iv.online_checkin_s
        par[PAR_OBJECTIVE] = OBJ_CROWDING if iv.recommend_objective == "crowding" else OBJ_WAIT
        par[PAR_MAX_ENQ] = len(hi) if demand.max_hotel_enquiries is None else demand.max_hotel_enquiries
        par[PAR_MAX_VISITS] = demand.max_visits

        # -- draws from the caller's generator, in a fixed order
        self.rng = rng
        mean_size = float(np.dot(pmf, np.arange(1, pmf.size + 1)))
        t_parts, e_parts = [], []
        for e, ((edges, r), proc) in enumerate(zip(profiles, procs)):
            t = arrival_times(edges, r / mean_size, proc, self.start_s, self.end_s, rng)
            t_parts.append(t)
            e_parts.append(np.full(len(t), e, np.int64))
        t_arr = np.concatenate(t_parts)
        e_arr = np.concatenate(e_parts)
        o = np.lexsort((e_arr, t_arr))
        t_arr, e_arr = t_arr[o], e_arr[o]
        G = len(t_arr)
        self._pmf, self._demand, self._iv, self._popularity = pmf, demand, iv, popularity
        sizes = self._draw_sizes(G)
        gi, gf, plan = self._new_groups(t_arr, e_arr, sizes, T, af, ai, entry_place, len(hi) > 0)
        key = rng.integers(0, 2**63, size=1, dtype=np.int64).astype(np.uint64)

        # -- the World
        n_a, n_h, k = len(af), len(hf), plan.shape[1]
        n_slots = self._slot_count(gf)
        ad = np.zeros((n_a, N_AD), np.int64)
        adf = np.zeros((n_a, N_ADF))
        adf[:, AF_T_LAST] = self.start_s
        hd = np.zeros((n_h, N_HD), np.int64)
        hd[:, HD_FREE] = rooms_free
        hdf = np.zeros((n_h, N_HDF))
        hdf[:, HF_T_LAST] = self.start_s
        n_heap = G + 2 * n_a + 2
        self.world = World(
            T=T, af=af, ai=ai, hf=hf, hi=hi, hotel_order=order.astype(np.int64), entry_place=entry_place, par=par,
            key=key, plan=plan,
            gi=gi, gf=gf, plan_st=np.zeros((G, k), np.int8),
            vi=np.zeros((G * k, N_VI), np.int64), vf=np.full((G * k, N_VF), np.nan),
            ad=ad, adf=adf, hd=hd, hdf=hdf,
            qh=np.full(2 * n_a + n_h, -1, np.int64), qt=np.full(2 * n_a + n_h, -1, np.int64),
            slots=np.zeros((n_a, n_slots), np.int64),
            ht=np.zeros(n_heap), hs=np.zeros(n_heap, np.int64), hid=np.zeros(n_heap, np.int64),
            todo=np.zeros(G, np.int64), ctr=np.zeros(N_CTR, np.int64), now=np.array([self.start_s]),
        )
        self.world.ctr[C_N_DRAWN] = G
        schedule_openings(self.world)

    # -- groups ---------------------------------------------------------------------------------
    def _draw_sizes(self, n: int) -> np.ndarray:
        pmf = self._pmf
        return self.rng.choice(pmf.size, size=n, p=pmf / pmf.sum()) + 1 if pmf.size > 1 else np.ones(n, np.int64)

    def _new_groups(self, t_arr, e_arr, sizes, T, af, ai, entry_place, has_hotels: bool):
        """The rows of new groups (gi, gf, plan): time budget, behaviour flags and itinerary drawn
        from the generator, in this order."""
        rng, demand, iv = self.rng, self._demand, self._iv
        G = len(t_arr)
        if demand.time_budget_cv > 0:
            s2 = math.log1p(demand.time_budget_cv ** 2)
            budget = demand.time_budget_s * np.exp(rng.normal(-0.5 * s2, math.sqrt(s2), G))
        else:
            budget = np.full(G, float(demand.time_budget_s))
        u = rng.random((G, 6))
        overnight = (u[:, 0] < demand.overnight_share) & has_hotels
        flags = (overnight * F_OVERNIGHT
                 + (overnight & (u[:, 1] < iv.room_platform_share)) * F_PLATFORM
                 + (u[:, 2] < iv.online_checkin_share) * F_ONLINE
                 + (u[:, 3] < iv.recommend_share) * F_FOLLOW
                 + (u[:, 4] < iv.reservation_share) * F_RESERVE
                 + (u[:, 5] < iv.shuttle_share) * F_SHUTTLE).astype(np.int64)
        plan = draw_plans(rng, G, self._popularity, demand.max_visits + demand.alternatives)
        budget_end = t_arr + budget
        plan = trim_plans(plan, sizes, t_arr, budget_end, entry_place[e_arr], T[0], af[:, A_OPEN], af[:, A_CLOSE],
                          af[:, A_SVC_MEAN], af[:, A_DWELL_MEAN], ai[:, A_PLACE], demand.max_visits)
        gi = np.full((G, N_GI), -1, np.int64)
        gi[:, G_STATE] = 0
        gi[:, G_SIZE] = sizes
        gi[:, G_ENTRY] = e_arr
        gi[:, G_FLAGS] = flags
        gi[:, G_ROOMS] = -(-sizes // demand.persons_per_room)
        gi[:, G_PLACE] = entry_place[e_arr]
        gi[:, [G_MODE, G_PLAN_K, G_VISITS]] = 0
        gi[:, G_SEARCH_K] = 0
        gi[:, G_SLOT] = -1
        gf = np.full((G, N_GF), np.nan)
        gf[:, F_ARRIVE] = t_arr
        gf[:, F_BUDGET_END] = budget_end
        return gi, gf, plan

    def _slot_count(self, gf) -> int:
        """Entry slots the booking table needs: from the start to the end of the run or of the last budget."""
        iv = self._iv
        if iv.reservation_share <= 0:
            return 1
        horizon = max(self.end_s, float(gf[:, F_BUDGET_END].max()) if len(gf) else self.end_s)
        return int(math.ceil((horizon - self.start_s) / iv.slot_length_s)) + 1

    @property
    def n_drawn(self) -> int:
        """Groups drawn at construction; those after them were handed over (``add_arrivals``)."""
        return int(self.world.ctr[C_N_DRAWN])

    def arrived_rows(self):
        """The groups that have arrived: a slice while none were handed over, else their indices."""
        return K.arrived(self.world)

    def add_arrivals(self, entry: np.ndarray, persons: np.ndarray) -> int:
        """``persons[i]`` tourists arrive at entry point ``entry[i]`` now (handed over by another
        model of a coupled run): split into groups by the group-size distribution (the last group
        of each entry takes the remainder), drawn like the groups of the day (budget, behaviour,
        itinerary), appended to the tables and arrived at once, after every event up to now.
        Returns the number of groups added."""
        entry = np.asarray(entry, np.int64)
        persons = np.asarray(persons, np.int64)
        sizes, e_arr = [], []
        for e, n in zip(entry, persons):
            if n <= 0:
                continue
            s = self._draw_sizes(int(n))  # n groups of at least 1 person always cover n persons
            c = np.cumsum(s)
            k = int(np.searchsorted(c, n)) + 1
            s = s[:k].copy()
            s[-1] -= c[k - 1] - n
            sizes.append(s)
            e_arr.append(np.full(k, e, np.int64))
        if not sizes:
            return 0
        sizes, e_arr = np.concatenate(sizes), np.concatenate(e_arr)
        w = self.world
        add = len(sizes)
        gi, gf, plan = self._new_groups(np.full(add, self.now), e_arr, sizes, w.T, w.af, w.ai, w.entry_place,
                                        len(w.hi) > 0)
        k = w.plan.shape[1]
        g0 = len(w.gi)
        grown = dict(
            gi=np.vstack([w.gi, gi]), gf=np.vstack([w.gf, gf]), plan=np.vstack([w.plan, plan[:, :k]]),
            plan_st=np.vstack([w.plan_st, np.zeros((add, k), np.int8)]),
            vi=np.vstack([w.vi, np.zeros((add * k, N_VI), np.int64)]),
            vf=np.vstack([w.vf, np.full((add * k, N_VF), np.nan)]),
            todo=np.r_[w.todo, np.zeros(add, np.int64)],
            ht=np.r_[w.ht, np.zeros(add)], hs=np.r_[w.hs, np.zeros(add, np.int64)],
            hid=np.r_[w.hid, np.zeros(add, np.int64)],
        )
        n_slots = self._slot_count(grown["gf"])
        if n_slots > w.slots.shape[1]:
            grown["slots"] = np.hstack([w.slots, np.zeros((len(w.slots), n_slots - w.slots.shape[1]), np.int64)])
        self.world = w._replace(**grown)
        arrive_now(self.world, g0, g0 + add)
        return add

    # -- input checks --------------------------------------------------------------------------
    @staticmethod
    def _check_demand(d: Demand) -> np.ndarray:
        pmf = np.asarray(d.group_size_pmf, dtype=float)
        if pmf.ndim != 1 or pmf.size == 0 or not np.isfinite(pmf).all() or (pmf < 0).any() or pmf.sum() <= 0:
            raise UserError(f"demand: group_size_pmf = {d.group_size_pmf!r}; give probabilities >= 0 of groups of "
                            "1, 2, ... persons.")
        if abs(pmf.sum() - 1.0) > 1e-6:
            raise UserError(f"demand: group_size_pmf sums to {pmf.sum():g}; the probabilities must sum to 1.")
        if pmf.size > MAX_GROUP:
            raise UserError(f"demand: group_size_pmf allows groups of {pmf.size} persons; at most {MAX_GROUP}.")
        pmf = np.trim_zeros(pmf, "b")
        check_number(d.time_budget_s, "demand: time_budget_s", lo=0.0, lo_open=True)
        check_number(d.time_budget_cv, "demand: time_budget_cv", lo=0.0)
        check_share(d.overnight_share, "demand: overnight_share")
        mv = check_number(d.max_visits, "demand: max_visits", lo=1)
        alt = check_number(d.alternatives, "demand: alternatives", lo=0)
        if mv != int(mv) or alt != int(alt) or mv + alt > MAX_VISITS:
            raise UserError(f"demand: max_visits = {d.max_visits!r}, alternatives = {d.alternatives!r}; give whole "
                            f"numbers, max_visits >= 1, at most {MAX_VISITS} in all.")
        ppr = check_number(d.persons_per_room, "demand: persons_per_room", lo=1)
        if ppr != int(ppr):
            raise UserError(f"demand: persons_per_room = {d.persons_per_room!r} must be a whole number.")
        if d.max_hotel_enquiries is not None:
            check_number(d.max_hotel_enquiries, "demand: max_hotel_enquiries", lo=1)
        return pmf

    @staticmethod
    def _check_interventions(iv: Interventions) -> None:
        for key in ("reservation_share", "slot_quota_share", "recommend_share", "room_platform_share",
                    "online_checkin_share", "shuttle_share"):
            check_share(getattr(iv, key), f"interventions: {key}")
        check_number(iv.slot_length_s, "interventions: slot_length_s", lo=0.0, lo_open=True)
        check_number(iv.entry_time_factor, "interventions: entry_time_factor", lo=0.0, lo_open=True)
        for key in ("platform_search_s", "online_checkin_s", "shuttle_headway_s"):
            check_number(getattr(iv, key), f"interventions: {key}", lo=0.0)
        if iv.recommend_objective not in ("wait", "crowding"):
            raise UserError(f'interventions: recommend_objective = "{iv.recommend_objective}"; use "wait" '
                            '(lowest predicted entry wait) or "crowding" (lowest share of the capacity taken).')

    def _attractions(self, at: Attractions, iv: Interventions, n_places: int):
        n = len(at.place)
        if n == 0:
            raise UserError("attractions: there is none; add at least one attraction.")
        ids = feature_ids(at.ids, n, "attraction")
        pf = lambda v, key, **kw: per_feature(v, n, key, "attraction", ids, **kw)  # noqa: E731
        place = check_places(at.place, n_places, "attraction", ids)
        gates = pf(at.gates, "gates", integer=True, lo=1, fix="Give at least 1 entry gate.")
        extra = pf(iv.extra_gates, "extra_gates (intervention)", integer=True, lo=0)
        svc = pf(at.service_time_s, "service_time_s", lo=0.0)
        svc_cv = pf(at.service_cv, "service_cv", lo=0.0)
        cap = pf(at.capacity, "capacity", integer=True, lo=1, fix="Give the most visitors inside at once.")
        dwell = pf(at.dwell_mean_s, "dwell_mean_s", lo=0.0)
        dwell_cv = pf(at.dwell_cv, "dwell_cv", lo=0.0)
        pop = pf(at.popularity, "popularity", lo=0.0)
        if pop.sum() <= 0:
            raise UserError("attractions: every popularity is 0; give at least one attraction a weight > 0.")
        opn = pf(at.open_s, "open_s", allow_inf=True, none=-math.inf)
        cls = pf(at.close_s, "close_s", allow_inf=True, none=math.inf)
        bad = np.flatnonzero(cls <= opn)
        if bad.size:
            i = bad[0]
            raise UserError(f'attraction "{ids[i]}": close_s = {cls[i]:g} is not after open_s = {opn[i]:g}.')
        cap_eff = cap.copy()
        if iv.capacity_cap is not None:
            cap_eff = np.minimum(cap, pf(iv.capacity_cap, "capacity_cap (intervention)", integer=True, lo=1))
        af = np.zeros((n, N_AF))
        ai = np.zeros((n, N_AI), np.int64)
        af[:, A_SVC_MEAN] = svc * iv.entry_time_factor
        af[:, A_SVC_CV] = svc_cv
        af[:, A_DWELL_MEAN] = dwell
        af[:, A_DWELL_CV] = dwell_cv
        af[:, A_OPEN] = opn
        af[:, A_CLOSE] = cls
        af[:, A_SLOT0] = np.maximum(opn, self.start_s)
        ai[:, A_GATES] = gates + extra
        ai[:, A_CAP] = cap_eff
        ai[:, A_CAP_NOMINAL] = cap
        ai[:, A_SVC_DIST] = choice_per_feature(at.service_time_distribution, n, "service_time_distribution",
                                               "attraction", ids, DISTRIBUTIONS)
        ai[:, A_DWELL_DIST] = choice_per_feature(at.dwell_distribution, n, "dwell_distribution", "attraction", ids,
                                                 DISTRIBUTIONS)
        ai[:, A_PLACE] = place
        per_slot = ai[:, A_GATES] * iv.slot_length_s / np.maximum(af[:, A_SVC_MEAN], 1e-9)
        ai[:, A_QUOTA] = np.floor(np.minimum(iv.slot_quota_share * per_slot, 2**40)) if iv.reservation_share > 0 else 0
        return af, ai, pop, ids

    def _hotels(self, ho: Hotels | None, n_places: int):
        n = 0 if ho is None else len(ho.place)
        ids = feature_ids(None if ho is None else ho.ids, n, "hotel")
        hf = np.zeros((n, N_HF))
        hi = np.zeros((n, N_HI), np.int64)
        if n == 0:
            return hf, hi, np.zeros(0, np.int64), ids
        pf = lambda v, key, **kw: per_feature(v, n, key, "hotel", ids, **kw)  # noqa: E731
        hi[:, H_PLACE] = check_places(ho.place, n_places, "hotel", ids)
        hi[:, H_ROOMS] = pf(ho.rooms, "rooms", integer=True, lo=0)
        free = hi[:, H_ROOMS].copy() if ho.rooms_free is None else pf(ho.rooms_free, "rooms_free", integer=True, lo=0)
        bad = np.flatnonzero(free > hi[:, H_ROOMS])
        if bad.size:
            i = bad[0]
            raise UserError(f'hotel "{ids[i]}": rooms_free = {free[i]} is more than its rooms ({hi[i, H_ROOMS]}).')
        hi[:, H_DESKS] = pf(ho.desks, "desks", integer=True, lo=1, fix="Give at least 1 front-desk server.")
        hi[:, H_DESK_DIST] = choice_per_feature(ho.checkin_distribution, n, "checkin_distribution", "hotel", ids,
                                                DISTRIBUTIONS)
        hf[:, H_DESK_MEAN] = pf(ho.checkin_time_s, "checkin_time_s", lo=0.0)
        hf[:, H_DESK_CV] = pf(ho.checkin_cv, "checkin_cv", lo=0.0)
        hf[:, H_ENQUIRY] = pf(ho.enquiry_s, "enquiry_s", lo=0.0)
        hf[:, H_LET_UNTIL] = np.inf
        return hf, hi, free, ids

    # -- running -------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return float(self.world.now[0])

    @property
    def n_groups(self) -> int:
        return self.world.gi.shape[0]

    def advance(self, t: float) -> None:
        """Process every event up to and including time t; the clock then reads exactly t."""
        t = float(t)
        if not math.isfinite(t) or t < self.now:
            raise ValueError(f"advance({t}): the time must be finite and not before the clock ({self.now}).")
        run_until(self.world, t)

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Copies of every array that is not rebuilt from the static inputs, and the generator state."""
        state = {f: getattr(self.world, f).copy() for f in STATE_FIELDS}
        state["rng_state"] = self.rng.bit_generator.state
        state["version"] = STATE_VERSION
        return state

    def set_state(self, state: dict) -> None:
        """Restore a state from get_state() of an engine built from the same static inputs."""
        missing = [f for f in STATE_FIELDS if f not in state]
        if missing or state.get("version") != STATE_VERSION:
            raise UserError(f"tourism state: not a saved engine state (version {state.get('version')!r}, "
                            f"missing {', '.join(missing) or 'nothing'}).")
        w = self.world
        for f, n_rows in (("ad", len(w.af)), ("adf", len(w.af)), ("hd", len(w.hf)), ("hdf", len(w.hf)),
                          ("qh", 2 * len(w.af) + len(w.hf))):
            if np.shape(state[f])[0] != n_rows:
                raise UserError(f"tourism state: it was saved with other attractions or hotels ({f} has "
                                f"{np.shape(state[f])[0]} rows, this engine {n_rows}).")
        self.world = w._replace(**{f: np.array(state[f], dtype=getattr(w, f).dtype, copy=True) for f in STATE_FIELDS})
        self.rng.bit_generator.state = state["rng_state"]

    # -- outputs -------------------------------------------------------------------------------
    def kpis(self) -> dict[str, float]:
        return K.kpis(self.world, self._kpi_buffers)

    def attraction_values(self) -> dict[str, dict[str, float]]:
        return K.attraction_values(self.world, self.attr_ids)

    def hotel_values(self) -> dict[str, dict[str, float]]:
        return K.hotel_values(self.world, self.hotel_ids)

    def state_persons(self) -> dict[str, int]:
        """Persons in each state among those who have arrived (they sum to tourists_total)."""
        return dict(zip(STATE_NAMES, K.state_persons(self.world).tolist()))

    def category_persons(self) -> dict[str, int]:
        sp = K.state_persons(self.world)
        return {name: int(sp[list(codes)].sum()) for name, codes in CATEGORY.items()}

    def travelling(self) -> dict[str, np.ndarray]:
        """Groups on the move now: group, size, state, from/to place, departure and arrival time
        (s; before ``depart_s`` a shuttle user waits at ``from_place``), mode (0 foot, 1 shuttle).
        Positions are interpolated between the places along the route by (now − depart) /
        (arrive − depart)."""
        w = self.world
        st = w.gi[:, G_STATE]
        g = np.flatnonzero(np.isin(st, TRAVELLING_STATES))  # (not_arrived is not travelling)
        return {"group": g, "size": w.gi[g, G_SIZE], "state": st[g], "from_place": w.gi[g, G_FROM],
                "to_place": w.gi[g, G_TO], "depart_s": w.gf[g, F_DEP], "arrive_s": w.gf[g, F_ARR],
                "mode": w.gi[g, G_MODE]}

    def groups(self) -> dict[str, np.ndarray]:
        """Every arrived group: size, state, current (or last) place, attraction (-1 when none),
        hotel booked (-1 when none)."""
        w = self.world
        gi = w.gi[K.arrived(w)]
        return {"size": gi[:, G_SIZE], "state": gi[:, G_STATE], "place": gi[:, G_PLACE],
                "attraction": np.where(np.isin(gi[:, G_STATE], (WAIT_SLOT, QUEUE, GATE, INSIDE)), gi[:, G_ATTR], -1),
                "hotel": gi[:, G_HOTEL]}


