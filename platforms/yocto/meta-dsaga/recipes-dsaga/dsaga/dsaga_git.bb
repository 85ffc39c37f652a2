SUMMARY = "dsaga: distributed SAGA for edge devices (edge agent, hub, library)"
DESCRIPTION = "Trains L2-regularised linear models on data spread over edge devices: each \
device keeps its own SAGA table and trades FlatBuffers updates with a hub over ZeroMQ."
HOMEPAGE = "https://example.invalid/dsaga"
SECTION = "science"
# Set to the project's licence (and LIC_FILES_CHKSUM) when it has one.
LICENSE = "CLOSED"

# Point SRC_URI at your clone; SRCREV pins the revision (AUTOREV follows the branch).
SRC_URI = "git://example.invalid/dsaga.git;protocol=https;branch=main \
           file://run-ptest \
           "
SRCREV = "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

# flatbuffers-native provides the host flatc; its release must equal the target flatbuffers
# (the generated code checks the version at compile time): both come from one recipe here.
DEPENDS = "zeromq cppzmq libeigen flatbuffers flatbuffers-native zlib spdlog fmt cli11 tomlplusplus"

inherit cmake pkgconfig ptest systemd

# Which programs go into the image. The hub usually runs on a server, not on the device.
# systemd (on with the distro feature): READY=1, STATUS= and watchdog pings for the Type=notify
# units; without it the calls are no-ops (use Type=exec units). http: the hub's Prometheus
# endpoint (--metrics-listen), over meta-oe's cpp-httplib.
PACKAGECONFIG ??= "agent ${@bb.utils.filter('DISTRO_FEATURES', 'systemd', d)}"
PACKAGECONFIG[systemd] = "-DDSAGA_WITH_SYSTEMD=ON,-DDSAGA_WITH_SYSTEMD=OFF,systemd"
PACKAGECONFIG[http] = "-DDSAGA_WITH_HTTP=ON,-DDSAGA_WITH_HTTP=OFF,cpp-httplib"
PACKAGECONFIG[agent] = "-DDSAGA_BUILD_AGENT=ON,-DDSAGA_BUILD_AGENT=OFF"
PACKAGECONFIG[hub] = "-DDSAGA_BUILD_HUB=ON,-DDSAGA_BUILD_HUB=OFF"
# Fully static agent: needs static archives of every dependency (staticdev), rarely wanted in an
# image built with the device's own C library.
PACKAGECONFIG[static-agent] = "-DDSAGA_STATIC_AGENT=ON,-DDSAGA_STATIC_AGENT=OFF"

# The unit tests are built only for ptest (googletest as a dependency only then); they never run
# at build time (gtest discovery is PRE_TEST) and read their data from the ptest directory.
DEPENDS += "${@bb.utils.contains('PTEST_ENABLED', '1', 'googletest', '', d)}"
EXTRA_OECMAKE = " \
    -DBUILD_TESTING=${@bb.utils.contains('PTEST_ENABLED', '1', 'ON', 'OFF', d)} \
    -DDSAGA_BUILD_TOOLS=OFF \
    -DDSAGA_NATIVE_ARCH=OFF \
    -DDSAGA_TEST_DATA_DIR=${PTEST_PATH}/data \
    -DFLATC_EXECUTABLE=${STAGING_BINDIR_NATIVE}/flatc \
"

SYSTEMD_PACKAGES = "${PN}"
SYSTEMD_SERVICE:${PN} = "${@bb.utils.contains('PACKAGECONFIG', 'agent', 'dsaga-agent.service', '', d)} \
                         ${@bb.utils.contains('PACKAGECONFIG', 'hub', 'dsaga-hub.service', '', d)}"
# Enable by hand once /etc/dsaga/agent.toml names the hub.
SYSTEMD_AUTO_ENABLE = "disable"

do_install:append() {
    install -d ${D}${sysconfdir}/dsaga ${D}${systemd_system_unitdir}
    if ${@bb.utils.contains('PACKAGECONFIG', 'agent', 'true', 'false', d)}; then
        install -m 0644 ${S}/config/agent.toml ${D}${sysconfdir}/dsaga/agent.toml
        install -m 0644 ${S}/platforms/systemd/dsaga-agent.service ${D}${systemd_system_unitdir}/
    fi
    if ${@bb.utils.contains('PACKAGECONFIG', 'hub', 'true', 'false', d)}; then
        install -m 0644 ${S}/config/hub.toml ${D}${sysconfdir}/dsaga/hub.toml
        install -m 0644 ${S}/platforms/systemd/dsaga-hub.service ${D}${systemd_system_unitdir}/
    fi
}

do_install_ptest() {
    install -d ${D}${PTEST_PATH}/tests ${D}${PTEST_PATH}/data
    for t in ${B}/tests/dsaga_*_test; do
        [ -f "$t" ] && install -m 0755 "$t" ${D}${PTEST_PATH}/tests/
    done
    cp -r ${S}/tests/data/. ${D}${PTEST_PATH}/data/
}

CONFFILES:${PN} = "${sysconfdir}/dsaga/agent.toml ${sysconfdir}/dsaga/hub.toml"
FILES:${PN} += "${systemd_system_unitdir}"
# The library is static (libdsaga.a, CMake package, pkg-config file): development only.
FILES:${PN}-staticdev += "${libdir}/libdsaga.a"
FILES:${PN}-dev += "${libdir}/cmake/dsaga ${datadir}/dsaga"
RDEPENDS:${PN}-ptest += "bash"
