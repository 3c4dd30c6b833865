# Helpers for black-box tests against vcsim, the vCenter simulator of
# govmomi (../shared/vcsim beside the checkout). Source after lib.sh and
# bb_init. A private simulator runs in $BB_TMP/vcsim and is stopped with the
# test (its pid joins BB_PIDS); SOAP calls go through curl with the
# simulator's CA and a cookie jar holding the session.

# vs_start_vcsim SOURCE_DIR [VCSIM_ARGS]: starts the simulator and sets
# VCSIM_URL, VCSIM_CACERT, VCSIM_CONTROL_URL, VCSIM_PID. When it cannot
# start, the test is skipped (exit 77), or fails when VMP_REQUIRE_VCSIM=1.
vs_start_vcsim() {
  local src=$1 args=${2:-}
  local script=$src/../shared/vcsim/start-vcsim.sh
  VS_RUN_DIR=$BB_TMP/vcsim
  mkdir -p "$VS_RUN_DIR"
  local why=""
  if [ ! -x "$script" ] && [ ! -f "$script" ]; then
    why="$script not found"
  elif ! VCSIM_RUN_DIR=$VS_RUN_DIR VCSIM_ARGS=$args bash "$script" \
    >"$BB_TMP/vcsim-start.out" 2>"$BB_TMP/vcsim-start.err"; then
    why="start-vcsim.sh failed: $(tail -n 1 "$BB_TMP/vcsim-start.err")"
  elif [ ! -f "$VS_RUN_DIR/vcsim.env" ]; then
    why="start-vcsim.sh wrote no vcsim.env"
  fi
  if [ -n "$why" ]; then
    if [ "${VMP_REQUIRE_VCSIM:-0}" = 1 ]; then
      bb_fail "vcsim could not be started (VMP_REQUIRE_VCSIM=1): $why"
      bb_finish
      exit 1
    fi
    echo "SKIP: vcsim could not be started: $why"
    exit 77
  fi
  # shellcheck disable=SC1091
  . "$VS_RUN_DIR/vcsim.env"
  BB_PIDS+=("$VCSIM_PID")
  VS_COOKIES=$BB_TMP/vcsim.cookies
}

# vs_soap BODY: one SOAP call; prints the answer (faults included).
vs_soap() {
  curl -s --max-time 30 --cacert "$VCSIM_CACERT" -b "$VS_COOKIES" -c "$VS_COOKIES" \
    -H 'Content-Type: text/xml; charset=utf-8' -H 'SOAPAction: "urn:vim25/6.5"' \
    --data-binary "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soapenv:Body>$1</soapenv:Body></soapenv:Envelope>" \
    "$VCSIM_URL"
}

vs_login() {
  vs_soap "<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>${VCSIM_USERNAME:-user}</userName><password>${VCSIM_PASSWORD:-pass}</password></Login>" |
    grep -q '<LoginResponse'
}

# vs_find PATH: the object at an inventory path, as "TYPE ID"; nothing when
# there is none.
vs_find() {
  vs_soap "<FindByInventoryPath xmlns=\"urn:vim25\"><_this type=\"SearchIndex\">SearchIndex</_this><inventoryPath>$1</inventoryPath></FindByInventoryPath>" |
    sed -n 's/.*<returnval type="\([^"]*\)">\([^<]*\)<\/returnval>.*/\1 \2\n/p' | head -n 1
}

# vs_find_id PATH: the id alone.
vs_find_id() { vs_find "$1" | cut -d' ' -f2; }

# vs_prop TYPE ID PROPERTY: the text of one property of one object.
vs_prop() {
  vs_soap "<RetrievePropertiesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>$1</type><pathSet>$3</pathSet></propSet><objectSet><obj type=\"$1\">$2</obj></objectSet></specSet><options/></RetrievePropertiesEx>" |
    sed -n "s|.*<name>$3</name><val[^>]*>\([^<]*\)</val>.*|\1|p"
}

# vs_prop_xml TYPE ID PROPERTY: the whole answer of a read of one property
# (for structured values: devices, snapshot trees).
vs_prop_xml() {
  vs_soap "<RetrievePropertiesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>$1</type><pathSet>$3</pathSet></propSet><objectSet><obj type=\"$1\">$2</obj></objectSet></specSet><options/></RetrievePropertiesEx>"
}

# vs_vm_disks PATH: how many virtual disks a VM has.
vs_vm_disks() {
  vs_prop_xml VirtualMachine "$(vs_find_id "$1")" config.hardware.device |
    grep -o 'type="VirtualDisk"' | grep -c .
}

# vs_vm_snapshots PATH: the names in a VM's snapshot tree, sorted.
vs_vm_snapshots() {
  vs_prop_xml VirtualMachine "$(vs_find_id "$1")" snapshot |
    grep -o '<name>[^<]*</name>' | sed 's|</\?name>||g' | grep -vx snapshot | sort
}

# vs_vm_current_snapshot PATH: the name of a VM's current snapshot.
vs_vm_current_snapshot() {
  local xml cur
  xml=$(vs_prop_xml VirtualMachine "$(vs_find_id "$1")" snapshot)
  cur=$(sed -n 's|.*<currentSnapshot type="VirtualMachineSnapshot">\([^<]*\)</currentSnapshot>.*|\1|p' <<<"$xml")
  [ -n "$cur" ] || return 1
  sed -n "s|.*>$cur</snapshot><vm [^>]*>[^<]*</vm><name>\([^<]*\)</name>.*|\1|p" <<<"$xml"
}

# vs_vm_host PATH: the name of the host a VM runs on.
vs_vm_host() {
  local id host
  id=$(vs_find_id "$1")
  [ -n "$id" ] || return 1
  host=$(vs_prop VirtualMachine "$id" runtime.host)
  [ -n "$host" ] || return 1
  vs_prop HostSystem "$host" name
}

# vs_folder_vms PATH: the names of the virtual machines in a folder (not
# templates), sorted, one a line.
vs_folder_vms() {
  local id
  id=$(vs_find_id "$1")
  [ -n "$id" ] || return 0
  vs_soap "<RetrievePropertiesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet><pathSet>config.template</pathSet></propSet><objectSet><obj type=\"Folder\">$id</obj><skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>children</name><type>Folder</type><path>childEntity</path><skip>false</skip></selectSet></objectSet></specSet><options/></RetrievePropertiesEx>" |
    grep -o '<objects>.*</objects>' | sed 's|</objects>|&\n|g' |
    sed -n '/<name>config.template<\/name><val[^>]*>true</d; s|.*<name>name</name><val[^>]*>\([^<]*\)</val>.*|\1|p' |
    sort
}

# vs_wait_task TASK-ID: waits (up to 30 s) for a task to end; succeeds when
# it ended in success.
vs_wait_task() {
  local state
  for _ in $(seq 150); do
    state=$(vs_prop Task "$1" info.state)
    case $state in
    success) return 0 ;;
    error) return 1 ;;
    esac
    sleep 0.2
  done
  return 1
}

# vs_make_template SOURCE_VM FOLDER NAME CLUSTER: clones DC0/vm/SOURCE_VM
# into a new folder DC0/vm/FOLDER as a template NAME (placed in the root
# resource pool of CLUSTER, on the source's host).
vs_make_template() {
  local src=$1 folder=$2 name=$3 cluster=$4 vmroot srcid pool fid task
  vmroot=$(vs_find_id DC0/vm)
  srcid=$(vs_find_id "DC0/vm/$src")
  pool=$(vs_find_id "DC0/host/$cluster/Resources")
  [ -n "$vmroot" ] && [ -n "$srcid" ] && [ -n "$pool" ] || return 1
  fid=$(vs_soap "<CreateFolder xmlns=\"urn:vim25\"><_this type=\"Folder\">$vmroot</_this><name>$folder</name></CreateFolder>" |
    sed -n 's/.*<returnval type="Folder">\([^<]*\)<\/returnval>.*/\1/p')
  [ -n "$fid" ] || return 1
  task=$(vs_soap "<CloneVM_Task xmlns=\"urn:vim25\"><_this type=\"VirtualMachine\">$srcid</_this><folder type=\"Folder\">$fid</folder><name>$name</name><spec><location><pool type=\"ResourcePool\">$pool</pool></location><template>true</template><powerOn>false</powerOn></spec></CloneVM_Task>" |
    sed -n 's/.*<returnval type="Task">\([^<]*\)<\/returnval>.*/\1/p')
  [ -n "$task" ] && vs_wait_task "$task" &&
    [ "$(vs_prop VirtualMachine "$(vs_find_id "DC0/vm/$folder/$name")" config.template)" = true ]
}

# vs_control METHOD WHAT [QUERY]: one of the simulator's test controls
# (fault, task-delay, host-stats).
vs_control() {
  curl -sf --max-time 10 --cacert "$VCSIM_CACERT" -X "$1" "$VCSIM_CONTROL_URL/$2${3:+?$3}"
}

# vs_host_cpu HOST MHZ: sets a host's CPU use (its memory use stays 1404 MB).
vs_host_cpu() { vs_control POST host-stats "name=$1&cpu=$2&mem=1404" >/dev/null; }
